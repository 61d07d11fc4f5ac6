"""The embedded registry loses nothing it acknowledged: a full disk, and fsync before answering.

Full disk (issue 16 item 7d): the registry root lies on a real 2 MiB tmpfs
(``mount -t tmpfs -o size=2m``; the tests run as root) that a filler file fills, so writes fail
with ENOSPC part-way through a chunk; the fixture unmounts it after stopping the server. A
second variant limits the server's file size with RLIMIT_FSIZE (``resource.setrlimit`` in the
child), so writes fail with EFBIG; it runs where mount(8) is refused too, and the tmpfs variant
falls back to it there (with a warning that says so). Each way a body is written is checked:
the failed request's bytes are not kept (the upload's offset and its data file's size are
counted), and a retry of the same request succeeds and yields the right blob.

fsync (issue 16 item 7e): the registry runs under ``strace -f -y`` (Debian's strace) and every
acknowledged change is checked in the system calls it made before the answer went out: a file
is fsynced before it is renamed into place, the directory after, a new directory's parent after
the mkdir, a removed entry's directory after the unlink, an upload's data after its last write.
The check fails as soon as one of those fsyncs goes away.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.registry import require_binary

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KIB = 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- full disk


@dataclass
class FullDisk:
    """A registry whose writes fail past a point, and a way to make room again."""

    how: str  # "tmpfs" (ENOSPC) or "RLIMIT_FSIZE" (EFBIG)
    root: Path
    finalizer: Callable[[Callable[[], object]], object]
    room: int  # bytes a file may still grow by once ``fill`` ran (RLIMIT_FSIZE: its size limit)
    registry: EmbeddedRegistry | None = None
    filler: Path | None = None

    @property
    def errno(self) -> int:
        return errno.ENOSPC if self.how == "tmpfs" else errno.EFBIG

    def start(self) -> EmbeddedRegistry:
        limit = self.room

        def limit_file_size() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        self.registry = start_embedded(
            self.root,
            self.finalizer,
            preexec_fn=limit_file_size if self.how == "RLIMIT_FSIZE" else None,
        )
        return self.registry

    def fill(self) -> None:
        """tmpfs: fill the disk, then free ``room`` bytes (the size limit needs nothing)."""
        if self.how != "tmpfs":
            return
        self.filler = self.root.parent / "filler"
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            while True:
                try:
                    os.write(fd, b"\0" * (64 * KIB))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            os.ftruncate(fd, max(os.fstat(fd).st_size - self.room, 0))
        finally:
            os.close(fd)

    def free(self) -> EmbeddedRegistry:
        """Room again: the filler goes (tmpfs), or the server restarts without the limit."""
        assert self.registry is not None
        if self.how == "tmpfs":
            assert self.filler is not None
            self.filler.unlink()
            return self.registry
        self.registry.stop()
        self.how = "unlimited"
        self.registry = start_embedded(self.root, self.finalizer)
        return self.registry


def _mount_tmpfs(directory: Path, size: str) -> bool:
    mount = shutil.which("mount")
    if mount is None:
        return False
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0


def _unmount(directory: Path) -> None:
    umount = shutil.which("umount") or "umount"
    if subprocess.run([umount, str(directory)], check=False).returncode != 0:
        subprocess.run([umount, "-l", str(directory)], check=True)


@pytest.fixture(params=["tmpfs", "RLIMIT_FSIZE"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FullDisk]:
    disk = tmp_path / "disk"
    disk.mkdir()
    how = request.param
    mounted = how == "tmpfs" and _mount_tmpfs(disk, "2m")
    if how == "tmpfs" and not mounted:
        warnings.warn(
            "mount -t tmpfs was refused (not root?): the tmpfs case runs with RLIMIT_FSIZE",
            stacklevel=1,
        )
        how = "RLIMIT_FSIZE"
    stops: list[Callable[[], object]] = []
    try:
        yield FullDisk(how, disk / "root", stops.append, room=64 * KIB)
    finally:
        # The servers first: a mount with a process working in it cannot go.
        for stop in reversed(stops):
            stop()
        if mounted:
            _unmount(disk)


def _upload_path(response: httpx.Response) -> str:
    parts = urlsplit(response.headers["location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _data_file(disk: FullDisk, location: str) -> Path:
    return disk.root / "uploads" / location.rsplit("/", 1)[1] / "data"


def _assert_storage_error(disk: FullDisk, response: httpx.Response) -> None:
    assert response.status_code == 500, response.text
    assert os.strerror(disk.errno) in response.text


def _assert_nothing_left(disk: FullDisk) -> None:
    assert list((disk.root / "uploads").iterdir()) == []
    assert list((disk.root / "tmp").iterdir()) == []


CHUNKED = [
    "PATCH with Content-Range",
    "PATCH streamed",
    "PATCH in small pieces",
    "PUT with the last chunk",
    "PUT with the last chunk in small pieces",
]
# Bodies sent as many small pieces (chunked transfer encoding) reach the server as pieces
# smaller than a write buffer: buffered writes then fail in a flush, with bytes still buffered.
PIECE = 3000


def pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), PIECE):
        time.sleep(0.002)  # lets the server take each piece on its own
        yield data[start : start + PIECE]


@pytest.mark.parametrize("way", CHUNKED)
def test_a_chunk_that_fills_the_disk_is_rolled_back(full_disk: FullDisk, way: str) -> None:
    """The failed chunk's bytes are gone from the upload; the same chunk sent again succeeds."""
    registry = full_disk.start()
    first = os.urandom(full_disk.room // 2)
    second = os.urandom(4 * full_disk.room)  # far more than the room left
    blob = first + second
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        start = http.post("/v2/full/app/blobs/uploads/")
        assert start.status_code == 202
        location = _upload_path(start)
        answer = http.patch(
            location, content=first, headers={"Content-Range": f"0-{len(first) - 1}"}
        )
        assert (answer.status_code, answer.headers["range"]) == (202, f"0-{len(first) - 1}")
        full_disk.fill()
        _assert_storage_error(full_disk, send_second(http, way, location, first, second))
        # Counted: the upload holds exactly the first chunk, in its answer and on disk.
        status = http.get(location)
        assert (status.status_code, status.headers["range"]) == (204, f"0-{len(first) - 1}")
        assert _data_file(full_disk, location).stat().st_size == len(first)
        assert _data_file(full_disk, location).read_bytes() == first

    registry = full_disk.free()
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        status = http.get(location)
        assert (status.status_code, status.headers["range"]) == (204, f"0-{len(first) - 1}")
        answer = send_second(http, way, location, first, second)
        if not way.startswith("PUT"):
            assert (answer.status_code, answer.headers["range"]) == (202, f"0-{len(blob) - 1}")
            answer = http.put(location, params={"digest": sha256(blob)})
        assert answer.status_code == 201, answer.text
        got = http.get(f"/v2/full/app/blobs/{sha256(blob)}")
        assert (got.status_code, got.content == blob) == (200, True)
    _assert_nothing_left(full_disk)
    output = registry.output()
    assert "Traceback" not in output


def send_second(
    http: httpx.Client, way: str, location: str, first: bytes, second: bytes
) -> httpx.Response:
    """The request that meets the full disk, and its retry (maybe on a restarted registry)."""
    end = len(first) + len(second) - 1
    if way == "PATCH with Content-Range":
        range_ = f"{len(first)}-{end}"
        return http.patch(location, content=second, headers={"Content-Range": range_})
    if way == "PATCH streamed":
        return http.patch(location, content=second)
    if way == "PATCH in small pieces":
        return http.patch(location, content=pieces(second))
    body = pieces(second) if way.endswith("small pieces") else second
    return http.put(location, params={"digest": sha256(first + second)}, content=body)


@pytest.mark.parametrize("way", ["POST with a first chunk", "POST with the whole blob"])
def test_an_upload_opened_on_a_full_disk_leaves_nothing(full_disk: FullDisk, way: str) -> None:
    """A session whose first request failed was never announced: nothing of it is kept."""
    registry = full_disk.start()
    blob = os.urandom(4 * full_disk.room)
    params = {"digest": sha256(blob)} if way == "POST with the whole blob" else None
    full_disk.fill()
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        answer = http.post("/v2/full/app/blobs/uploads/", params=params, content=blob)
        _assert_storage_error(full_disk, answer)
    _assert_nothing_left(full_disk)
    assert not list((full_disk.root / "blobs").rglob("*" + sha256(blob)[7:]))

    registry = full_disk.free()
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        answer = http.post("/v2/full/app/blobs/uploads/", params=params, content=blob)
        if params is None:
            assert (answer.status_code, answer.headers["range"]) == (202, f"0-{len(blob) - 1}")
            answer = http.put(_upload_path(answer), params={"digest": sha256(blob)})
        assert answer.status_code == 201, answer.text
        assert http.get(f"/v2/full/app/blobs/{sha256(blob)}").content == blob


def test_a_manifest_pushed_to_a_full_disk_leaves_nothing(full_disk: FullDisk) -> None:
    """Nothing of it is kept (no tag, no link, no temporary file); sent again, it is stored."""
    full_disk.room = 4 * KIB  # less than the manifest
    registry = full_disk.start()
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [],
            "annotations": {"padding": "x" * 8000},
        }
    ).encode()
    headers = {"Content-Type": OCI_MANIFEST}
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        answer = http.post(
            "/v2/full/app/blobs/uploads/", params={"digest": sha256(config)}, content=config
        )
        assert answer.status_code == 201
        full_disk.fill()
        answer = http.put("/v2/full/app/manifests/v1", content=manifest, headers=headers)
        _assert_storage_error(full_disk, answer)
        assert http.get("/v2/full/app/manifests/v1").status_code == 404
        assert http.get(f"/v2/full/app/manifests/{sha256(manifest)}").status_code == 404
    _assert_nothing_left(full_disk)
    registry = full_disk.free()
    with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:
        answer = http.put("/v2/full/app/manifests/v1", content=manifest, headers=headers)
        assert answer.status_code == 201, answer.text
        assert http.get("/v2/full/app/manifests/v1").content == manifest


# ---------------------------------------------------------------------- fsync, under strace

_TRACED = (
    "fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat,"
    "write,pwrite64,writev,read,recvfrom,sendto,sendmsg"
)
_LINE = re.compile(r"(?P<pid>\d+) +(?P<rest>.*)")
_RESUMED = re.compile(r"<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)")
_CALL = re.compile(r"(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>-?\d+)")
_FD_PATH = re.compile(r"-?\d+<(?P<path>[^>]*)>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_METHOD = re.compile(r'^"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+)')


@dataclass
class Call:
    index: int
    name: str
    paths: list[str]
    text: str


@dataclass
class Segment:
    """The system calls from one request's arrival to its answer."""

    request: str
    calls: list[Call] = field(default_factory=list)
    status: int = 0


def _paths(name: str, args: str) -> list[str]:
    """The file paths a call acts on (fd annotations and path strings joined to their dirfd)."""
    strings = _STRING.findall(args)
    fds = [m["path"] for m in _FD_PATH.finditer(args)]
    if name in ("fsync", "fdatasync", "write", "pwrite64", "writev"):
        return fds[:1]
    if name in ("rename", "mkdir", "unlink"):
        return strings[:2] if name == "rename" else strings[:1]

    def at(dirfd: str, path: str) -> str:
        return path if path.startswith("/") else os.path.join(dirfd, path)

    parts = [p.strip() for p in args.split(",")]
    if name in ("renameat", "renameat2"):
        dirs = [_FD_PATH.match(parts[0]), _FD_PATH.match(parts[2])]
        return [at(d["path"] if d else "", s) for d, s in zip(dirs, strings[:2], strict=True)]
    if name in ("mkdirat", "unlinkat"):
        d = _FD_PATH.match(parts[0])
        return [at(d["path"] if d else "", strings[0])]
    return []


def parse_strace(log: Path) -> tuple[list[Call], list[Segment]]:
    """Successful calls in completion order, and the per-request segments."""
    pending: dict[str, str] = {}
    calls: list[Call] = []
    segments = [Segment("(start-up)")]
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.fullmatch(line)
        if match is None:
            continue
        pid, rest = match["pid"], match["rest"]
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>").rstrip()
            continue
        resumed = _RESUMED.fullmatch(rest)
        if resumed is not None:
            rest = pending.pop(pid, resumed["call"] + "(") + resumed["rest"]
        call = _CALL.match(rest)
        if call is None or int(call["result"]) < 0:
            continue
        name, args = call["call"], call["args"]
        if name in ("read", "recvfrom"):  # uvloop reads sockets with read(2)
            if "socket:" not in args.split(",", 1)[0]:
                continue
            first = _STRING.search(args)
            method = _METHOD.match(first[0]) if first else None
            if method is not None:
                segments.append(Segment(f"{method[1]} {method[2]}"))
            continue
        if name in ("sendto", "sendmsg", "writev", "write") and '"HTTP/1.1 ' in args:
            segments[-1].status = int(args.split('"HTTP/1.1 ', 1)[1][:3])
            calls.append(Call(len(calls), "answer", [], rest))
            segments[-1].calls.append(calls[-1])
            continue
        entry = Call(len(calls), name, _paths(name, args), rest)
        calls.append(entry)
        segments[-1].calls.append(entry)
    return calls, segments


def check_durability(
    calls: list[Call], segments: list[Segment], root: str
) -> tuple[dict[str, int], list[str]]:
    """Every rule in the module docstring, per segment: counts of what was checked, problems."""
    tmp = os.path.join(root, "tmp") + "/"
    uploads = os.path.join(root, "uploads") + "/"
    problems: list[str] = []

    def durable(path: str) -> bool:
        return path.startswith(root + "/") and not path.startswith(tmp)

    def synced(path: str, after: int, before: int) -> bool:
        return any(
            c.name in ("fsync", "fdatasync") and c.paths and c.paths[0] == path
            for c in calls[after + 1 : before]
        )

    def writes(c: Call, path: str) -> bool:
        return c.name.startswith(("write", "pwrite")) and c.paths == [path]

    def check(ok: bool, segment: Segment, rule: str, call: Call) -> None:
        if not ok:
            problems.append(f"{segment.request}: {rule}: {call.text}")

    counts = {"renames": 0, "mkdirs": 0, "unlinks": 0, "written": 0}
    for segment in segments:
        end = next(
            (c.index for c in segment.calls if c.name == "answer"),
            segment.calls[-1].index + 1 if segment.calls else 0,
        )
        before_end = [c for c in segment.calls if c.index < end]
        renames = [c for c in before_end if c.name.startswith("rename")]
        for rename in renames:
            old, new = rename.paths
            # An upload session matters once its id was sent (202); a monolithic upload's
            # session never is, only the blob it ends in.
            if not durable(new) or (new.startswith(uploads) and segment.status != 202):
                continue
            counts["renames"] += 1
            last_write = max((c.index for c in calls[: rename.index] if writes(c, old)), default=-1)
            check(synced(old, last_write, rename.index), segment, "no fsync before", rename)
            following = [r.index for r in renames if r.index > rename.index] + [end]
            check(
                synced(os.path.dirname(new), rename.index, following[0]),
                segment,
                "no directory fsync after it, before the next step",
                rename,
            )
        for made in (c for c in before_end if c.name in ("mkdir", "mkdirat")):
            if durable(made.paths[0]):
                counts["mkdirs"] += 1
                parent = os.path.dirname(made.paths[0])
                check(synced(parent, made.index, end), segment, "no parent fsync after", made)
        for gone in (c for c in before_end if c.name in ("unlink", "unlinkat")):
            path = gone.paths[0]
            # Upload sessions are cleaned up after their blob is in place: not acknowledged.
            if durable(path) and not path.startswith(uploads):
                counts["unlinks"] += 1
                parent = os.path.dirname(path)
                check(synced(parent, gone.index, end), segment, "no directory fsync after", gone)
        written = {c.paths[0] for c in before_end if c.paths and writes(c, c.paths[0])}
        for path in sorted(p for p in written if durable(p)):
            counts["written"] += 1
            last = max(c.index for c in before_end if writes(c, path))
            check(synced(path, last, end), segment, "no fsync after the last write", calls[last])
    return counts, problems


def _tracee(process: subprocess.Popen[bytes]) -> int:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return int(children[0])


def test_every_acknowledged_change_is_fsynced_before_the_answer(tmp_path: Path) -> None:
    strace = require_binary("strace")
    log = tmp_path / "strace.log"
    root = tmp_path / "root"
    stops: list[Callable[[], object]] = []
    registry = start_embedded(
        root,
        stops.append,
        wrapper=[strace, "-f", "-y", "-qq", "-s", "96", "-e", f"trace={_TRACED}", "-o", str(log)],
        timeout=60,
    )
    answers: list[tuple[str, int]] = []
    try:
        with httpx.Client(base_url=f"http://{registry.host}", timeout=60) as http:

            def call(method: str, url: str, **kwargs: object) -> httpx.Response:
                response = http.request(method, url, **kwargs)  # type: ignore[arg-type]
                answers.append((f"{method} {url}", response.status_code))
                return response

            config = b'{"architecture":"amd64","os":"linux"}'
            call("POST", f"/v2/d/app/blobs/uploads/?digest={sha256(config)}", content=config)
            layer = os.urandom(100 * KIB)
            start = call("POST", "/v2/d/app/blobs/uploads/")
            location = _upload_path(start)
            chunk = call(
                "PATCH", location, content=layer[:60000], headers={"Content-Range": "0-59999"}
            )
            chunk = call("PATCH", _upload_path(chunk), content=layer[60000:90000])
            call(
                "PUT", _upload_path(chunk), params={"digest": sha256(layer)}, content=layer[90000:]
            )
            call("POST", f"/v2/d/other/blobs/uploads/?mount={sha256(layer)}&from=d/app")
            config_descriptor = {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            }
            layer_descriptor = {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(layer),
                "size": len(layer),
            }
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config_descriptor,
                    "layers": [layer_descriptor],
                }
            ).encode()
            headers = {"Content-Type": OCI_MANIFEST}
            call("PUT", "/v2/d/app/manifests/v1", content=manifest, headers=headers)
            call("PUT", "/v2/d/app/manifests/v2", content=manifest, headers=headers)
            referrer = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": "application/x.sig",
                    "config": config_descriptor,
                    "layers": [],
                    "subject": {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256(manifest),
                        "size": len(manifest),
                    },
                }
            ).encode()
            call(
                "PUT", f"/v2/d/app/manifests/{sha256(referrer)}", content=referrer, headers=headers
            )
            call("DELETE", "/v2/d/app/manifests/v2")
            call("DELETE", f"/v2/d/app/manifests/{sha256(referrer)}")
            call("DELETE", f"/v2/d/other/blobs/{sha256(layer)}")
    finally:
        if registry.process.poll() is None:
            os.kill(_tracee(registry.process), signal.SIGTERM)
            registry.process.wait(timeout=30)
        for stop in stops:
            stop()
    expected = [201, 202, 202, 202, 201, 201, 201, 201, 201, 202, 202, 202]
    assert [status for _, status in answers] == expected, answers

    calls, segments = parse_strace(log)
    writes = ("PUT", "POST", "PATCH", "DELETE")
    requests = [s.request for s in segments if s.request.startswith(writes)]
    assert len(requests) == len(answers), requests
    counts, problems = check_durability(calls, segments, os.path.realpath(root))
    assert problems == []
    # Something was checked for each kind (blob, upload session, link, tag, referrer, deletes).
    assert counts["renames"] >= 12, counts
    assert counts["unlinks"] >= 4, counts
    assert counts["mkdirs"] >= 6, counts
    assert counts["written"] >= 2, counts
