"""A changed watches file takes effect without a restart; a broken one keeps the last good one.

One real `imgctl server --watches` process on loopback, its watches file mounted the way a
Kubernetes ConfigMap is (FILE -> ..data/FILE, ..data -> ..<timestamp>/), against real registries.
Each test writes a whole file (by atomic rename, symlink swap or in-place edit) and counts what
the server does: scans per watch from /metrics, statuses from GET /scan, ERROR lines in its log,
tags promoted into the destination registry. Intervals are an hour where a scan must come from
the reload itself, never from the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgctl.scan.watches import Watch, WatchConfig, parse_watches

from ..conftest import IMGCTL
from ..support.deployment import AUDIENCE, OPS, SECRET, server_env, start_server, stop_process
from ..support.httpd import CheckedHTTPServer
from ..support.idp import start_idp
from ..support.registry import Registry, add_tags
from ..support.sshkeys import keygen
from .test_scan_server import wait_for

WEB, APP = "reload/web", "reload/app"  # web: 1.0.0 and 2.0.0; app: 1.0.0, auto-promoted
BOT = "imgctl-scanner"


@dataclass
class Mount:
    """A watches file mounted like a Kubernetes ConfigMap: each write is one way of changing it."""

    root: Path
    generation: int = 0

    @property
    def path(self) -> Path:
        return self.root / "watches.yaml"

    def _data(self) -> Path:
        return (self.root / "..data").resolve()

    def create(self, text: str) -> None:
        self.root.mkdir(parents=True)
        first = self.root / "..gen-0"
        first.mkdir()
        (first / "watches.yaml").write_text(text)
        (self.root / "..data").symlink_to(first.name)
        (self.root / "watches.yaml").symlink_to("..data/watches.yaml")

    def rename(self, text: str) -> None:
        """An atomic rename over the file (what most tools and editors do)."""
        new = self._data() / "watches.yaml.new"
        new.write_text(text)
        os.replace(new, self._data() / "watches.yaml")

    def swap(self, text: str) -> None:
        """The kubelet's update: a new directory, then ..data renamed to point at it."""
        self.generation += 1
        old = self._data()
        new = self.root / f"..gen-{self.generation}"
        new.mkdir()
        (new / "watches.yaml").write_text(text)
        (self.root / "..data_tmp").symlink_to(new.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        for child in old.iterdir():
            child.unlink()
        old.rmdir()

    def edit(self, text: str) -> None:
        """An edit in place: same inode, truncated and rewritten."""
        with (self._data() / "watches.yaml").open("w") as handle:
            handle.write(text)

    def delete(self) -> None:
        (self._data() / "watches.yaml").unlink()


@dataclass
class Reloading:
    dev: Registry
    prod: Registry
    http: str
    database: str
    mount: Mount
    log: Path

    def scan(self) -> dict[str, Any]:
        answer = httpx.get(f"http://{self.http}/scan", timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def watches(self) -> dict[str, dict[str, Any]]:
        return {w["name"]: w for w in self.scan()["watches"]}

    def file(self) -> dict[str, Any]:
        state: dict[str, Any] = self.scan()["watchesFile"]
        return state

    def loaded(self) -> dict[str, Any]:
        [condition] = self.file()["conditions"]
        assert condition["type"] == "Loaded"
        return dict(condition)

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://{self.http}/metrics", timeout=10).text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("imgctl_")
        }

    def scans(self, watch: str) -> int:
        """Scans of ``watch`` so far, whatever their outcome."""
        return int(
            sum(
                value
                for name, value in self.metrics().items()
                if name.startswith("imgctl_scans_total{") and f'watch="{watch}"' in name
            )
        )

    def errors(self, fragment: str) -> int:
        """ERROR lines of the server saying the watches file does not load, with ``fragment``."""
        return sum(
            1
            for line in self.log.read_text().splitlines()
            if " ERROR " in line and f"watches file {self.mount.path}" in line and fragment in line
        )

    def wait(self, condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
        wait_for(condition, seconds, what, self.log)

    def applied(self, text: str) -> None:
        """Wait until ``text`` is the version in force."""
        revision = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        self.wait(
            lambda: self.file()["revision"] == revision and self.loaded()["status"] == "True",
            "the new watches file to be loaded",
        )

    def change_web(self, write: Callable[[str], None], text: str) -> int:
        """Write ``text``, which changes web's spec; wait for the rescan; web's scans so far."""
        scans = self.scans("web")
        write(text)
        self.applied(text)
        self.wait(lambda: self.scans("web") >= scans + 1, "web rescanned with its new spec")
        return self.scans("web")


def watches_yaml(*watches: str, groups: str = OPS) -> str:
    """A watches file, one watch per line from line 3 on (so a test knows each one's line)."""
    lines = [f'serviceIdentity: {{subject: {BOT}, groups: ["{groups}"]}}', "watches:"]
    lines += [f"  - {watch}" for watch in watches]
    return "\n".join(lines) + "\n"


def web(registry: Registry, interval: str = "1h", policy: str = "'>=1.0.0 <2.0.0'") -> str:
    return (
        f"{{name: web, image: {registry.host}/{WEB}, interval: {interval},"
        f" policy: {{semver: {{range: {policy}}}}}}}"
    )


def plain(name: str, registry: Registry, interval: str = "1h") -> str:
    return f"{{name: {name}, image: {registry.host}/{WEB}, interval: {interval}}}"


def app(registry: Registry, to: str = "prod") -> str:
    return (
        f"{{name: app, image: {registry.host}/{APP}, interval: 1h,"
        f" policy: {{semver: {{range: '*'}}}}, autoPromote: {{from: dev, to: {to}}}}}"
    )


@pytest.fixture(scope="module")
def reloading(
    registries: Callable[..., Registry],
    tmp_path_factory: pytest.TempPathFactory,
    layouts: Callable[..., Any],
) -> Iterator[Reloading]:
    import asyncio

    from ..support.skopeo import push_layout

    root = tmp_path_factory.mktemp("scan-reload")
    dev, prod = registries(), registries()
    built = layouts(tag="1.0.0", layers=1)
    push_layout(built.oci_ref, f"{dev.host}/{WEB}:1.0.0")
    asyncio.run(add_tags(f"{dev.host}/{WEB}:1.0.0", ["2.0.0"]))
    push_layout(built.oci_ref, f"{dev.host}/{APP}:1.0.0")
    key = keygen(root / "keys", "ed25519", name="alice")
    with contextlib.ExitStack() as cleanup:
        idp = start_idp(
            IMGCTL,
            root / "idp",
            {"alice": {"keys": [key.line], "email": "alice@example.com", "groups": [OPS]}},
            audiences=[AUDIENCE],
            secret=SECRET,
        )
        cleanup.callback(idp.stop)
        policy = root / "policy.yaml"
        policy.write_text(f"destinations:\n  prod: [{OPS}]\n  qa: [{OPS}]\n")
        mount = Mount(root / "config")
        mount.create(watches_yaml(web(dev)))
        database = f"sqlite:///{root / 'state' / 'imgctl.db'}"
        env = server_env(idp, dev, prod) | {
            "IMGCTL_DATABASE_URL": database,
            "IMGCTL_REGISTRY_QA": f"{prod.host}/qa",
        }
        process, _, http, log = start_server(
            root, env, "--policy-file", str(policy), "--watches", str(mount.path)
        )
        cleanup.callback(stop_process, process)
        yield Reloading(dev, prod, http, database, mount, log)


def test_a_watch_added_by_atomic_rename_is_scanned_and_the_others_keep_their_schedule(
    reloading: Reloading,
) -> None:
    r = reloading
    web_scans = r.change_web(r.mount.rename, watches_yaml(web(r.dev, interval="61m")))

    after = watches_yaml(web(r.dev, interval="61m"), plain("added", r.dev))
    r.mount.rename(after)
    r.wait(lambda: r.scans("added") >= 1, "a scan of the added watch")
    assert r.watches()["added"]["lastScanResult"]["tagCount"] == 2
    assert r.scans("web") == web_scans  # unchanged: its schedule (an hour) stands
    assert set(r.watches()) == {"web", "added"}


def test_a_symlink_swap_applies_a_changed_policy_at_once(reloading: Reloading) -> None:
    r = reloading
    scans = r.change_web(r.mount.swap, watches_yaml(web(r.dev, interval="62m")))
    assert r.watches()["web"]["policy"]["latestTag"] == "1.0.0"

    r.mount.swap(watches_yaml(web(r.dev, interval="62m", policy="'>=2.0.0'")))
    # The interval is an hour: only the reload can have rescanned it, with the new policy.
    r.wait(lambda: r.watches()["web"]["policy"]["latestTag"] == "2.0.0", "web at 2.0.0")
    assert r.watches()["web"]["policy"]["spec"] == {"semver": {"range": ">=2.0.0"}}
    assert r.scans("web") == scans + 1


def test_an_in_place_edit_applies_a_shorter_interval_at_once(reloading: Reloading) -> None:
    r = reloading
    scans = r.change_web(r.mount.edit, watches_yaml(web(r.dev, interval="63m")))
    assert r.watches()["web"]["interval"] == "1h3m0s"

    r.mount.edit(watches_yaml(web(r.dev, interval="1s")))
    r.wait(lambda: r.scans("web") >= scans + 3, "three scans a second apart")
    assert r.watches()["web"]["interval"] == "1s"


def test_a_removed_watch_stops_and_leaves_the_status_but_keeps_its_row(
    reloading: Reloading,
) -> None:
    import asyncio

    from imgctl.store import ScanStore

    r = reloading
    both = watches_yaml(web(r.dev, interval="1s"), plain("going", r.dev, interval="1s"))
    r.mount.rename(both)
    r.applied(both)
    r.wait(lambda: r.scans("going") >= 2, "two scans of the watch to remove")

    r.mount.rename(watches_yaml(web(r.dev, interval="1s")))
    r.wait(lambda: "going" not in r.watches(), "the removed watch leaving GET /scan")
    # A scan running when the file changed finishes; after that, no more.
    web_scans = r.scans("web")
    r.wait(lambda: r.scans("web") >= web_scans + 2, "two more scans of web")
    going = r.scans("going")
    web_scans = r.scans("web")
    r.wait(lambda: r.scans("web") >= web_scans + 3, "three more scans of web")
    assert r.scans("going") == going

    async def row() -> Any:
        async with await ScanStore.open(r.database) as store:
            return await store.get("going")

    kept = asyncio.run(row())
    assert kept is not None
    assert kept.tags == ("1.0.0", "2.0.0")


# (what is wrong, how it is written, the file, the line and words its ERROR must have)
def _broken(dev: Registry) -> list[tuple[str, str, str, str]]:
    good = web(dev, interval="1s")
    return [
        (
            "not YAML",
            "rename",
            watches_yaml(good, "{name: x, image: [")[:-1],
            "line 5, column 1: invalid YAML",
        ),
        (
            "a bad interval",
            "swap",
            watches_yaml(good, plain("bad", dev, interval="5x")),
            'line 4: watches[1].interval: Invalid value: "5x"',
        ),
        (
            "a name twice",
            "edit",
            watches_yaml(good, plain("web", dev)),
            'line 4: watches[1].name: "web" is already used by watches[0]',
        ),
        (
            "an environment the server does not have",
            "rename",
            watches_yaml(good, app(dev, to="staging")),
            "line 4: watch 'app': autoPromote.to 'staging' is not a configured environment",
        ),
        ("empty", "swap", "", "must be a mapping with a 'watches' key, not null"),
        ("binary", "rename", "\x00\x01", "is binary, not text"),
        ("deleted", "delete", "", "does not exist"),
    ]


def test_a_broken_file_keeps_the_last_good_version_and_says_why_once(
    reloading: Reloading,
) -> None:
    r = reloading
    good = watches_yaml(web(r.dev, interval="1s"))
    r.mount.rename(good)
    r.applied(good)
    revision = r.file()["revision"]
    for what, how, text, words in _broken(r.dev):
        if how == "delete":
            r.mount.delete()
        else:
            getattr(r.mount, how)(text)
        r.wait(
            lambda words=words: (
                r.loaded()["status"] == "False"  # type: ignore[misc]
                and words in r.loaded()["message"]
            ),
            f"the status to show the file with {what} does not load",
        )
        # The last good version keeps scanning meanwhile, and the problem is said once.
        scans = r.scans("web")
        r.wait(lambda scans=scans: r.scans("web") >= scans + 3, f"web scanning ({what})")  # type: ignore[misc]
        assert r.errors(words) == 1, (what, r.log.read_text())
        assert r.file()["revision"] == revision
        assert set(r.watches()) == {"web"}
        assert r.metrics()["imgctl_watches_file_loaded"] == 0
        condition = r.loaded()
        assert condition["reason"] == "LoadFailed"
        assert str(r.mount.path) in condition["message"]
    # The same broken text written again (a new file, the same text) is not a new version.
    _, _, bad_interval, words = _broken(r.dev)[1]
    r.mount.rename(bad_interval)
    r.wait(lambda: words in r.loaded()["message"], "the bad interval again")
    since = r.loaded()["lastTransitionTime"]
    assert r.errors(words) == 2  # the version before was another one (the file was gone)
    r.mount.rename(bad_interval)
    scans = r.scans("web")
    r.wait(lambda: r.scans("web") >= scans + 3, "web scanning")
    assert r.errors(words) == 2
    assert r.loaded()["lastTransitionTime"] == since

    fixed = watches_yaml(web(r.dev, interval="1s"), plain("fixed", r.dev))
    r.mount.rename(fixed)
    r.applied(fixed)
    r.wait(lambda: r.scans("fixed") >= 1, "a scan of the watch the fixed file adds")
    assert r.metrics()["imgctl_watches_file_loaded"] == 1
    assert r.loaded()["reason"] == "Succeeded"


def test_service_identity_and_auto_promotion_reload(reloading: Reloading) -> None:
    r = reloading
    refused = watches_yaml(app(r.dev), groups="nobody@example.com")
    r.mount.rename(refused)
    r.applied(refused)

    def message() -> str:
        return str(r.watches()["app"]["conditions"][0]["message"])

    r.wait(lambda: "auto-promotion to prod failed" in message(), "the refused auto-promotion")
    assert "needs one of the groups" in message()
    assert not r.prod.has_tag(f"release/{APP}", "1.0.0")

    # Only the service identity changes: the watches that auto-promote are scanned again at
    # once (their interval is an hour) and promote as the new identity.
    r.mount.swap(watches_yaml(app(r.dev)))
    r.wait(lambda: r.prod.has_tag(f"release/{APP}", "1.0.0"), "1.0.0 promoted to prod")

    # A new destination: the next tag goes there (rescanned at once), the old rule is gone.
    import asyncio

    asyncio.run(add_tags(f"{r.dev.host}/{APP}:1.0.0", ["1.1.0"]))
    r.mount.edit(watches_yaml(app(r.dev, to="qa")))
    r.wait(lambda: r.prod.has_tag(f"qa/{APP}", "1.1.0"), "1.1.0 promoted to qa")
    status = r.watches()["app"]
    assert status["autoPromote"]["to"] == "qa"
    assert status["autoPromote"]["lastPromotedTag"] == "1.1.0"
    assert not r.prod.has_tag(f"release/{APP}", "1.1.0")
    assert not r.prod.has_tag(f"qa/{APP}", "1.0.0")  # promoted before, to prod: not again


def test_scan_status_says_when_the_file_does_not_load(reloading: Reloading) -> None:
    r = reloading
    r.mount.rename(watches_yaml(web(r.dev), plain("bad", r.dev, interval="5x")))
    r.wait(lambda: r.loaded()["status"] == "False", "the broken file noticed")
    table = subprocess.run(
        [IMGCTL, "scan", "status", "--catalog-url", f"http://{r.http}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert f"watches file {r.mount.path} does not load" in table.stderr
    assert "watches[1].interval" in table.stderr
    as_json = subprocess.run(
        [IMGCTL, "scan", "status", "--catalog-url", f"http://{r.http}", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(as_json.stdout)
    assert document["watchesFile"]["conditions"][0]["status"] == "False"
    good = watches_yaml(web(r.dev))
    r.mount.rename(good)
    r.applied(good)


def test_imgctl_scan_reloads_its_config_too(
    registries: Callable[..., Registry], tmp_path: Path
) -> None:
    # The repository does not exist: a failed scan is a scan too, and says "scan NAME".
    registry = registries()
    mount = Mount(tmp_path / "config")
    mount.create(watches_yaml(plain("first", registry)))
    log = tmp_path / "scan.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [IMGCTL, "scan", "--config", str(mount.path)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "IMGCTL_ENABLE_IAAS_AUTH": "false",
            },
        )
        try:
            wait_for(lambda: "scan first" in log.read_text(), 60, "the first watch's scan", log)
            mount.swap(watches_yaml(plain("first", registry), plain("second", registry)))
            wait_for(lambda: "scan second" in log.read_text(), 60, "the added watch's scan", log)
            mount.rename(watches_yaml(plain("first", registry, interval="5x")))
            wait_for(
                lambda: f"watches file {mount.path} does not load" in log.read_text(),
                60,
                "the broken file's error",
                log,
            )
            assert 'line 3: watches[0].interval: Invalid value: "5x"' in log.read_text()
            mount.edit(watches_yaml(plain("third", registry)))
            wait_for(lambda: "scan third" in log.read_text(), 60, "the fixed file's watch", log)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=30)
    assert code == 130, log.read_text()  # Ctrl-C, after a clean stop (README "Exit codes")


# ------------------------------------------------------------------------- in one process


@pytest.fixture
def held_registry() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """A registry stand-in listing one tag whose digest HEAD waits until released.

    (host, HEAD arrived, release). docker-registry cannot be held on one request; this speaks
    just enough of the protocol for a scan: /v2/, the tag list and a manifest HEAD.
    """
    arrived, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"name": "app", "tags": ["1.0.0"]}' if "/tags/list" in self.path else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:
            arrived.set()
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Docker-Content-Digest", "sha256:" + "a" * 64)
            self.send_header("Content-Length", "100")
            self.end_headers()

    server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", arrived, release
    release.set()
    server.shutdown()
    server.server_close()
    server.check()


def _config(*watches: dict[str, Any]) -> WatchConfig:
    return parse_watches(
        {"serviceIdentity": {"subject": BOT, "groups": [OPS]}, "watches": list(watches)},
        source="watches.yaml",
    )


PROMOTING = {
    "name": "app",
    "interval": "1h",
    "policy": {"semver": {"range": "*"}},
    "autoPromote": {"from": "dev", "to": "prod"},
}
# Each a change to the promoting watch made while its scan runs; None: no change (the control).
WHILE_SCANNING: dict[str, dict[str, Any] | None] = {
    "unchanged": None,
    "another destination": {"autoPromote": {"from": "dev", "to": "qa"}},
    "no autoPromote": {"autoPromote": None},
    "another policy": {"policy": {"semver": {"range": ">=2.0.0"}}},
    "another interval": {"interval": "2h"},
    "removed": {},
}


@pytest.mark.parametrize("change", WHILE_SCANNING)
async def test_a_scan_running_when_its_watch_changes_does_not_promote_under_the_old_rule(
    held_registry: tuple[str, threading.Event, threading.Event], change: str
) -> None:
    from imgctl.remote import ClientOptions
    from imgctl.scan.scanner import Scanner

    host, arrived, release = held_registry
    before = _config(PROMOTING | {"image": f"{host}/app"})
    promotions: list[tuple[str, str]] = []

    async def promote(watch: Watch, tag: str, digest: str) -> None:
        assert watch.auto_promote is not None
        promotions.append((watch.auto_promote.destination, tag))

    fields = WHILE_SCANNING[change]
    async with Scanner(
        before, promote=promote, options=ClientOptions(backoff=0.01, max_backoff=0.05)
    ) as scanner:
        scan = asyncio.ensure_future(scanner.scan(before.watches[0]))
        assert await asyncio.to_thread(arrived.wait, 30)  # listed; resolving the digest
        if fields is not None:
            spec = {key: value for key, value in (PROMOTING | fields).items() if value is not None}
            scanner.reconfigure(_config(spec | {"image": f"{host}/app"}) if fields else _config())
        release.set()
        state = await scan
    assert state.latest_tag == "1.0.0"
    if fields is None:
        assert promotions == [("prod", "1.0.0")]
        assert state.promoted_tag == "1.0.0"
    else:
        assert promotions == []
        assert state.promoted_tag is None


async def test_replicas_each_reloading_their_file_scan_a_changed_watch_and_promote_once(
    db_url: str,
    registry: Registry,
    push_image: Callable[..., Any],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """Two replicas on one database, each with its own copy of the file, both changed.

    Each rescans the changed watch at once (their interval is an hour), one after the other
    (the claim is held while the first scans and promotes): the new tag is promoted once.
    """
    from imgctl.remote import ClientOptions
    from imgctl.scan.reload import WatchesFile
    from imgctl.scan.scanner import Scanner
    from imgctl.store import ScanStore

    name = repo("reload-replicas")
    pushed = push_image(registry, repository=name, tag="1.0.0", layers=1)
    image = f"{registry.host}/{name}"

    def text(interval: str) -> str:
        return watches_yaml(
            f"{{name: app, image: {image}, interval: {interval},"
            " policy: {semver: {range: '*'}}, autoPromote: {from: dev, to: prod}}"
        )

    files = [tmp_path / f"replica-{i}.yaml" for i in range(2)]
    for file in files:
        file.write_text(text("1h"))
    promotions: list[str] = []

    async def promote(watch: Watch, tag: str, digest: str) -> None:
        promotions.append(tag)
        await asyncio.sleep(0.5)  # a copy takes a while: the claim stays held meanwhile

    states = [await ScanStore.open(db_url) for _ in files]
    watched = [WatchesFile(file, interval=0.1) for file in files]
    scanners = [
        Scanner(
            file.config,
            watches_file=file,
            state=state,
            owner=f"replica-{i}",
            promote=promote,
            options=ClientOptions(backoff=0.01, max_backoff=0.05),
        )
        for i, (file, state) in enumerate(zip(watched, states, strict=True))
    ]
    stop = asyncio.Event()
    runs = [asyncio.ensure_future(scanner.run(stop)) for scanner in scanners]
    try:
        async with asyncio.timeout(60):
            while True:
                if promotions and sum(s.scans for s in scanners) >= 1:
                    break
                await asyncio.sleep(0.05)
            before = [scanner.scans for scanner in scanners]
            await add_tags(pushed.ref, ["1.1.0"])
            for file in files:
                file.write_text(text("59m"))
            while True:
                if all(s.scans > n for s, n in zip(scanners, before, strict=True)):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*runs)
        for scanner, state in zip(scanners, states, strict=True):
            await scanner.aclose()
            await state.aclose()
    assert promotions == ["1.0.0", "1.1.0"]
    assert [s.config.watches[0].interval for s in scanners] == [59 * 60, 59 * 60]
    assert sum(s.scans for s in scanners) == 3  # one at start, then one each after the change


async def test_at_start_a_schedule_planned_for_another_image_or_a_longer_interval_is_not_kept(
    registry: Registry, push_image: Callable[..., Any], repo: Callable[[str], str]
) -> None:
    """A restart with an edited file: the next scans planned by the old version (an hour away)."""
    from datetime import UTC, datetime, timedelta

    from imgctl.remote import ClientOptions
    from imgctl.scan.scanner import MemoryScanState, Scanner
    from imgctl.scan.state import WatchState

    name = repo("restart")
    push_image(registry, repository=name, tag="1.0.0", layers=1)
    image = f"{registry.host}/{name}"
    config = _config(
        {"name": "shorter", "image": image, "interval": "1s"},
        {"name": "moved", "image": image, "interval": "2h"},
        {"name": "kept", "image": image, "interval": "2h"},
    )
    state = MemoryScanState()
    later = datetime.now(UTC) + timedelta(hours=1)
    for watch in config.watches:
        planned_for = "registry.example.com/old" if watch.name == "moved" else image
        await state.save(WatchState(name=watch.name, image=planned_for, next_scan_at=later))
    scanned: list[str] = []
    stop = asyncio.Event()
    scanner = Scanner(
        config,
        state=state,
        options=ClientOptions(backoff=0.01, max_backoff=0.05),
        on_scan=lambda watch, _, __: scanned.append(watch.name),
    )
    run = asyncio.ensure_future(scanner.run(stop))
    try:
        async with asyncio.timeout(60):
            # Every loop has looked at its row by then (the first looks are spread over 2 s).
            while True:
                if scanned.count("shorter") >= 4 and "moved" in scanned:
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await run
        await scanner.aclose()
    assert scanned.count("moved") == 1
    assert "kept" not in scanned
    kept = await state.get("kept")
    assert kept is not None
    assert kept.next_scan_at == later


async def test_a_touched_watches_file_rereads_the_password_file_it_names(
    htpasswd_registry: Registry, push_image: Callable[..., Any], tmp_path: Path
) -> None:
    """A rotated registry password (passwordFile) is taken when the watches file is touched."""
    from imgctl.remote import ClientOptions
    from imgctl.scan.reload import WatchesFile
    from imgctl.scan.scanner import Scanner

    from ..conftest import PASSWORD, USER

    private = push_image(htpasswd_registry, tag="1.0.0", creds=f"{USER}:{PASSWORD}")
    secret = tmp_path / "password"
    secret.write_text("the old password\n")
    path = tmp_path / "watches.yaml"
    path.write_text(
        f"watches:\n  - {{name: app, image: {private.ref.rsplit(':', 1)[0]}, interval: 1h,"
        f" credentials: {{username: {USER}, passwordFile: password}}}}\n"
    )
    watches_file = WatchesFile(path, interval=0.1)
    outcomes: list[str] = []
    scanner = Scanner(
        watches_file.config,
        watches_file=watches_file,
        options=ClientOptions(backoff=0.01, max_backoff=0.05),
        on_scan=lambda _, state, __: outcomes.append(state.reason),
    )
    stop = asyncio.Event()
    run = asyncio.ensure_future(scanner.run(stop))
    try:
        async with asyncio.timeout(60):
            while True:
                if outcomes:
                    break
                await asyncio.sleep(0.05)
            assert outcomes == ["AuthenticationFailed"]
            secret.write_text(PASSWORD + "\n")
            os.utime(path)  # touched: the same text, so the password file is what changed
            while True:
                if "Succeeded" in outcomes:
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await run
        await scanner.aclose()
    assert watches_file.config.watches[0].credentials.password == PASSWORD
