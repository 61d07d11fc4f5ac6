"""Bounded, sanitised input before any write (issue 15, item 6), against real servers.

Before: an unauthenticated Promote with a 3 MiB reference was read whole (gRPC's default limit is
4 MiB) and written whole into the audit row and the audit log; a 50 MiB ``PUT /images`` was
buffered whole (twice) before its 1 MiB limit was checked. Now gRPC reads at most 16 KiB of a
request, every field of a Promote is refused over its limit before anything else happens (and
recorded cut, with a mark), a PUT body is refused as soon as it passes 1 MiB, and no caller's
text can start a line of the audit trail (stdout) or of the log (stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import select
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from sqlalchemy import create_engine, text

from imgctl._internal.bounds import MAX_ENVIRONMENT, MAX_REFERENCE

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.deployment import (
    ENGINEERING,
    Identity,
    grpc_call,
    promote_request,
    server_env,
    start_identity,
    stop_process,
    wait_http,
)
from ..support.postgres import BACKENDS, scratch_database
from ..support.registry import Registry, free_port

TOKEN = "input-bounds-catalog-token"
MIB = 1024 * 1024
CUT = re.compile(r"…\[cut: (\d+) characters\]$")
# What a line of the server's stderr may look like: a record, or a traceback line below one.
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: |    "
    # the server's one start-up line (issue 22), which holds no caller's text
    r"|imgctl server: listening on grpc(\+tls)? 127\.0\.0\.1:\d+, http 127\.0\.0\.1:\d+$)"
)


@dataclass
class Served:
    identity: Identity
    grpc: str
    http: str
    process: subprocess.Popen[bytes]
    database: str
    stdout: Path
    stderr: Path

    def token(self) -> str:
        return self.identity.token("alice")

    def rows(self, request_id: str) -> list[dict[str, Any]]:
        engine = create_engine(self.database)
        try:
            with engine.connect() as connection:
                result = connection.execute(
                    text("SELECT * FROM audit_events WHERE request_id = :id"), {"id": request_id}
                )
                return [dict(row._mapping) for row in result]
        finally:
            engine.dispose()

    def longest_field(self) -> int:
        """The longest text value of any audit row."""
        columns = ("request_id", "subject", "email", "groups", "reference", "source_env")
        columns += ("destination_env", "source_ref", "destination_ref", "error", "peer")
        engine = create_engine(self.database)
        try:
            with engine.connect() as connection:
                lengths = ", ".join(f"coalesce(max(length({c})), 0)" for c in columns)
                return max(connection.execute(text(f"SELECT {lengths} FROM audit_events")).one())
        finally:
            engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest,
    registries: Callable[..., Registry],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"bounds-{request.param}")
    with contextlib.ExitStack() as cleanup:
        identity = start_identity(root, {"alice": ("alice@example.com", [ENGINEERING])}, cleanup)
        database = cleanup.enter_context(scratch_database(request.param, root))
        tokens = root / "tokens.yaml"
        tokens.write_text(f"tokens:\n  - name: ci\n    token: {TOKEN}\n    is_disabled: false\n")
        env = server_env(identity.idp, registries(), registries()) | {
            "IMGCTL_DATABASE_URL": database
        }
        grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        stdout, stderr = root / "server.stdout", root / "server.stderr"
        process = subprocess.Popen(
            [
                *(IMGCTL, "server", "--bind-address", grpc_address),
                *("--http-address", http_address, "--tokens-file", str(tokens)),
            ],
            env=env,
            stdout=stdout.open("wb"),
            stderr=stderr.open("wb"),
        )
        cleanup.callback(stop_process, process)
        wait_http(f"http://{http_address}/healthz", process, stderr)
        yield Served(identity, grpc_address, http_address, process, database, stdout, stderr)


def call(served: Served, request: Any, token: str | None) -> tuple[grpc.StatusCode, str, str]:
    status, details, request_id, _ = asyncio.run(
        grpc_call(served.grpc, "Promote", request, token=token)
    )
    return status, details, request_id


# --- gRPC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_a_3_mib_reference_is_refused_unread(served: Served, signed_in: bool) -> None:
    token = served.token() if signed_in else None
    status, details, request_id = call(served, promote_request("a" * (3 * MIB)), token)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    # gRPC refused it before imgctl saw it: nothing to audit, and nothing big anywhere.
    assert served.rows(request_id) == []
    assert served.longest_field() < 4096
    assert served.stdout.stat().st_size < MIB
    assert served.stderr.stat().st_size < MIB


FIELDS = {"ref": MAX_REFERENCE, "source": MAX_ENVIRONMENT, "destination": MAX_ENVIRONMENT}
COLUMNS = {"ref": "reference", "source": "source_env", "destination": "destination_env"}


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
@pytest.mark.parametrize("over", [1, 8000], ids=["one-over", "8000-over"])
@pytest.mark.parametrize("field", list(FIELDS))
def test_an_overlong_field_is_invalid_argument_and_recorded_cut(
    served: Served, field: str, over: int, signed_in: bool
) -> None:
    limit = FIELDS[field]
    length = limit + over
    fields = {"ref": "team/app:v1", "source": "dev", "destination": "prod"}
    fields[field] = "x" * length
    token = served.token() if signed_in else None
    status, details, request_id = call(served, promote_request(**fields), token)
    # Refused before authentication, the policy or any registry: the same for everybody.
    assert status == grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"{field} is {length} characters long; the limit is {limit}" in details
    assert len(details) < 1024
    [row] = served.rows(request_id)
    assert row["result"] == "invalid"
    assert row["subject"] is None  # the token was not even looked at
    recorded = row[COLUMNS[field]]
    assert len(recorded) <= limit
    cut = CUT.search(recorded)
    assert cut is not None
    assert int(cut.group(1)) == length
    assert recorded.startswith("x" * (limit // 2))
    assert len(row["error"]) < 1024
    # The audit log's line for it is small too.
    [line] = [line for line in served.stdout.read_text().splitlines() if request_id in line]
    assert len(line) < 4096


FORGED = '{"request_id": "forged", "action": "promote", "result": "succeeded"}'
HOSTILE = [
    {"ref": f"app:v1\n{FORGED}", "destination": "prod"},
    {"ref": "app:v1", "source": f"dev\r\n{FORGED[:40]}", "destination": "prod"},
    {"ref": "app:v1", "destination": "prod\u2028" + "2026-01-01 00:00:00,000 ERROR x: y"},
    {"ref": "app:v1\x1b[2K\x1b[1Aforged", "destination": "prod\x85"},
]


def test_no_field_can_start_a_line_of_the_audit_log_or_the_log(served: Served) -> None:
    token = served.token()
    request_ids = []
    for fields in HOSTILE:
        for caller in (None, token):
            status, _, request_id = call(served, promote_request(**fields), caller)
            assert status != grpc.StatusCode.OK
            request_ids.append(request_id)
    audit = served.stdout.read_text().split("\n")
    assert audit[-1] == ""
    records = [json.loads(line) for line in audit[:-1]]  # every line is one JSON object
    assert [r["request_id"] for r in records if r["request_id"] in request_ids] == request_ids
    assert "forged" not in {r["request_id"] for r in records}
    for line in served.stderr.read_text().split("\n")[:-1]:
        assert LOG_LINE.match(line), line


def test_the_server_log_escapes_what_it_quotes(tmp_path: Path) -> None:
    # The configuration `imgctl server` and `imgctl catalog serve` log with, fed a message and
    # an exception that quote a caller's text with line breaks.
    script = (
        "import logging\n"
        "from imgctl.server.app import _configure_logging\n"
        "_configure_logging('imgctl server', {})\n"
        "log = logging.getLogger('imgctl.server')\n"
        "text = 'x\\n2026-01-01 00:00:00,000 INFO imgctl.server: forged\\r\\u2028\\x1b[2K'\n"
        "log.warning('quoted %s', text)\n"
        "try:\n"
        "    raise ValueError(text)\n"
        "except ValueError:\n"
        "    log.exception('failed on %r', 'y')\n"
        "logging.getLogger('imgctl.audit').info('{\"a\": \"' + text.replace('\\n', ' ') + '\"}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.split("\n")[:-1]
    assert [line.split(" ", 3)[2] for line in lines if not line.startswith(" ")] == [
        "WARNING",
        "ERROR",
    ]
    for line in lines:
        assert LOG_LINE.match(line), line
        assert not {"\r", "\x1b", "\u2028"} & set(line)
    assert "quoted x\\n2026-01-01 00:00:00,000 INFO imgctl.server: forged\\r\\u2028\\x1b[2K" in (
        result.stderr
    )
    [audit] = result.stdout.split("\n")[:-1]
    assert not {"\r", "\x1b", "\u2028"} & set(audit)


# --- PUT /images --------------------------------------------------------------------------


def upload(address: str, head: bytes, body_bytes: int, chunked: bool) -> tuple[int, int]:
    """Send ``head`` then up to ``body_bytes`` of body until the server answers.

    Returns (HTTP status, body bytes sent before the answer came or the server closed).
    """
    host, port = address.rsplit(":", 1)
    piece = b" " * (64 * 1024)
    frame = (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
    sent = 0
    pending = memoryview(b"")
    ended = False  # the whole body, with its last chunk if chunked, is queued
    answer = b""
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while True:
            if not pending and not ended:
                if sent < body_bytes:
                    pending = memoryview(frame)
                    sent += len(piece)
                else:
                    pending, ended = memoryview(b"0\r\n\r\n" if chunked else b""), True
            writing = [sock] if pending else []
            readable, writable, _ = select.select([sock], writing, [], 60)
            if not readable and not writable:
                raise TimeoutError(f"no answer after {sent} bytes")
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
                continue
            try:
                pending = pending[sock.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                pending, ended = memoryview(b""), True
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent


def head(address: str, content_length: int | None) -> bytes:
    framing = (
        b"Transfer-Encoding: chunked\r\n"
        if content_length is None
        else b"Content-Length: %d\r\n" % content_length
    )
    return (
        b"PUT /images HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\n%s\r\n" % (address.encode(), TOKEN.encode(), framing)
    )


def peak_growth(pid: int, action: Callable[[], Any]) -> tuple[Any, int, int, int]:
    """(what ``action`` returned, RSS before, peak RSS during, RSS after), in bytes."""
    process = psutil.Process(pid)
    before = process.memory_info().rss
    # Reset the kernel's peak-RSS mark (VmHWM), so that the peak is the action's.
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    result = action()
    status = Path(f"/proc/{pid}/status").read_text()
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    return result, before, peak, process.memory_info().rss


MEASURED: list[str] = []


@pytest.mark.parametrize(
    ("case", "content_length", "expected"),
    [
        ("chunked", None, 413),
        ("honest Content-Length", 50 * MIB, 413),
        # Declares 100 bytes, sends 50 MiB: the 100 are not JSON (400), the rest is not HTTP.
        ("lying Content-Length", 100, 400),
    ],
)
@pytest.mark.parametrize("kind", ["server", "catalog serve"])
def test_a_50_mib_put_does_not_grow_the_server(
    served: Served, tmp_path: Path, kind: str, case: str, content_length: int | None, expected: int
) -> None:
    with contextlib.ExitStack() as stack:
        if kind == "server":
            address, pid = served.http, served.process.pid
        else:
            url = stack.enter_context(catalog_server(IMGCTL, tmp_path, token=TOKEN))
            address = url.removeprefix("http://")
            [pid] = [
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] and address in p.info["cmdline"]
            ]
        request = head(address, content_length)
        chunked = content_length is None
        (status, sent), before, peak, after = peak_growth(
            pid, lambda: upload(address, request, 50 * MIB, chunked=chunked)
        )
    growth = peak - before
    MEASURED.append(
        f"{kind}, {case}: answered {status} after {sent / MIB:.1f} MiB sent; RSS "
        f"{before / MIB:.1f} MiB before, peak {peak / MIB:.1f} MiB (+{growth / MIB:.1f}), "
        f"{after / MIB:.1f} MiB after"
    )
    print(MEASURED[-1])
    assert status == expected
    # 1 MiB of body at most, plus the server's own buffers; the old code grew by 100+ MiB.
    assert growth < 16 * MIB, MEASURED[-1]


# --- the audit record ---------------------------------------------------------------------

TEXT_FIELDS = [
    "request_id",
    "subject",
    "email",
    "reference",
    "source_env",
    "destination_env",
    "source_ref",
    "destination_ref",
    "digest",
    "error_code",
    "error",
    "peer",
]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_audit_field_is_bounded_in_the_row_and_the_log_line(
    backend: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from imgctl.store import AuditRecord, AuditStore

    huge = "y" * (3 * MIB)
    record = AuditRecord(
        request_id=huge,
        time=datetime.now(UTC),
        action="promote",
        result="invalid",
        groups=[huge, *(f"g{i}" for i in range(9_999))],
        **{name: huge for name in TEXT_FIELDS if name != "request_id"},
    )
    line = json.dumps(record.as_dict())
    assert len(line) < 64 * 1024
    with scratch_database(backend, tmp_path) as url:
        async with await AuditStore.open(url) as store:
            await store.record(record)
            [back] = await store.recent(1)
    assert back == record
    for name in TEXT_FIELDS:
        value = getattr(back, name)
        assert len(value) <= 2048, name
        assert value.endswith(f"…[cut: {3 * MIB} characters]"), name
    assert len(back.groups) == 256
    assert back.groups[-1] == "…[cut: 10000 groups]"
    assert len(back.groups[0]) == 255
    assert back.groups[0].endswith(f"…[cut: {3 * MIB} characters]")


def test_the_name_bound_is_the_reference_grammars_longest_name() -> None:
    from imgctl._internal.bounds import MAX_NAME
    from imgctl.oci import Reference
    from imgctl.oci.reference import NAME_TOTAL_LENGTH_MAX, REGISTRY_HOST_LENGTH_MAX

    host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    path = "/".join(["p" * 127, "q" * 127])
    assert (len(host), len(path)) == (REGISTRY_HOST_LENGTH_MAX, NAME_TOTAL_LENGTH_MAX)
    longest = Reference.parse(f"{host}:65535/{path}:t")
    assert len(f"{longest.registry}/{longest.repository}") == MAX_NAME
