"""One exit-code table for every command (README "Exit codes"): usage errors 2, Ctrl-C 130.

Usage errors: a table of wrong invocations, one or more per command, each a subprocess with a
clean environment; each must exit 2 with one ``imgctl: error:`` line (or click's usage
message) and no traceback. Ctrl-C: each long-running command is interrupted (SIGINT) at a point
the test observes (a request arrived at a slow proxy or a silent server, a daemon printed its
listening line) and must exit 130 with the one line ``imgctl: interrupted``; every daemon exits
0 on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imgctl.cli._exit import EXIT_INTERRUPTED, EXIT_INVALID

from ..conftest import IMGCTL, PushedImage
from ..support.deployment import (
    ENGINEERING,
    Identity,
    launch_server,
    server_env,
    start_identity,
    wait_server,
)
from ..support.proxy import FaultProxy
from ..support.registry import Registry, free_port


def _env(home: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return kept | {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


# --- usage errors: exit 2 -------------------------------------------------------------------

_PAIRS_BAD = "a/b:1 c/d:1\nonly-one-field\n"
_GOOD = "127.0.0.1:9/app:v1"
_OTHER = "127.0.0.1:9/other:v1"  # a destination that is not _GOOD: each row checks one mistake

# (id, argv, what the error line says). "{dir}" is a fresh directory; files in it: pairs.txt
# (a bad line), empty.txt (no pairs), watches.yaml (not a watches file).
USAGE: list[tuple[str, list[str], str]] = [
    ("copy-one-argument", ["copy", _GOOD], "copy needs SRC and DST"),
    ("copy-pairs-and-file", ["copy", _GOOD, _OTHER, "-f", "{dir}/pairs.txt"], "not both"),
    ("copy-bad-reference", ["copy", "Bad/Ref:v1", _GOOD], "invalid reference"),
    ("copy-bad-platform", ["copy", _GOOD, _OTHER, "--platform", "linux"], "--platform"),
    ("copy-bad-pair-line", ["copy", "-f", "{dir}/pairs.txt"], "expected 'SRC DST'"),
    ("copy-no-pairs", ["copy", "-f", "{dir}/empty.txt"], "no 'SRC DST' pairs"),
    ("copy-onto-itself", ["copy", _GOOD, _GOOD.split(":v1")[0]], "the same image"),
    ("copy-file-onto-itself", ["copy", "-f", "{dir}/self.txt"], "self.txt:2: source and"),
    ("copy-missing-file", ["copy", "-f", "{dir}/absent.txt"], "absent.txt"),
    ("copy-verify-certs-maybe", ["copy", _GOOD, _OTHER, "--registry-verify-certs", "maybe"], ""),
    ("copy-jobs-zero", ["copy", _GOOD, _OTHER, "--jobs", "0"], "--jobs"),
    ("copy-unknown-flag", ["copy", _GOOD, _OTHER, "--platfrom", "linux/amd64"], "--platfrom"),
    (
        "copy-username-alone",
        ["copy", _GOOD, _OTHER, "--registry-username", "bob"],
        "must be given together",
    ),
    ("digest-bad-reference", ["digest", "https://example.com/app"], "invalid reference"),
    ("digest-no-reference", ["digest"], "Missing argument"),
    ("manifest-bad-reference", ["manifest", "example.com/app:-bad"], "invalid reference"),
    ("ls-bad-repository", ["ls", "Registry.io/Repo"], "invalid reference"),
    ("ls-page-size-zero", ["ls", _GOOD.split(":v1")[0], "--page-size", "0"], "--page-size"),
    ("promote-reference-twice", ["promote", "app:v1", "--ref", "app:v2"], "once"),
    ("promote-no-reference", ["promote"], "promote needs REF"),
    ("token-no-issuer", ["token"], "no issuer"),
    ("auth-login-no-issuer", ["auth", "login"], "no issuer"),
    ("sign-no-key", ["sign", _GOOD], "--key"),
    ("verify-no-key", ["verify", _GOOD], "--key"),
    ("attest-bad-type", ["attest", _GOOD, "--key", "k", "--predicate", "p", "--type", "x"], ""),
    ("scan-no-config", ["scan"], "watches file"),
    ("scan-bad-config", ["scan", "--config", "{dir}/watches.yaml", "--once"], "watches.yaml"),
    ("version-bad-output", ["version", "-o", "xml"], "xml"),
    (
        "auth-explain-missing-config",
        ["auth", "explain", _GOOD, "--config", "{dir}/no.toml"],
        "no.toml",
    ),
    (
        "idp-rotate-key-bad-config",
        ["idp", "rotate-key", "--config", "{dir}/watches.yaml"],
        "unknown key",
    ),
    ("audit-limit-zero", ["audit", "ls", "--limit", "0"], "--limit"),
    ("registry-serve-no-root", ["registry", "serve"], "--root"),
    ("completion-bad-shell", ["completion", "tcsh"], "tcsh"),
    ("no-such-command", ["copyy"], "No such command"),
]


@pytest.mark.parametrize(("argv", "says"), [c[1:] for c in USAGE], ids=[c[0] for c in USAGE])
def test_usage_errors_exit_2(argv: list[str], says: str, tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text(_PAIRS_BAD)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    (tmp_path / "self.txt").write_text(f"{_GOOD} {_GOOD}-other\n{_GOOD} {_GOOD}\n")
    (tmp_path / "watches.yaml").write_text("watches: 3\n")
    args = [arg.replace("{dir}", str(tmp_path)) for arg in argv]
    result = subprocess.run(
        [IMGCTL, *args], capture_output=True, text=True, timeout=60, env=_env(tmp_path)
    )
    assert result.returncode == EXIT_INVALID, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- Ctrl-C: exit 130 -----------------------------------------------------------------------


class Running:
    """A command run in the background, its stderr collected as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [IMGCTL, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,))
        self._reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            assert self.process.poll() is None, f"exited early: {self.stderr}"
            assert time.monotonic() < deadline, f"never got there: {self.stderr}"
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=10)
        return code


def _assert_interrupted(running: Running, code: int) -> None:
    assert code == EXIT_INTERRUPTED, running.stderr
    assert running.stderr.splitlines()[-1] == "imgctl: interrupted", running.stderr
    assert "Traceback" not in running.stderr
    assert "Aborted!" not in running.stderr


# Any P-256 public key: verify reads it before it asks the registry anything.
_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5b1OJklbUNuNIUN/qIIyZ8fP35gk
nkW3oQPLasXyNHid1m1YyX4n2g6Bb574I5PHXXHi9+rsBqRDf5uuhsNRhw==
-----END PUBLIC KEY-----
"""


def _arrived(proxy: FaultProxy, fragment: str) -> Callable[[], bool]:
    return lambda: any(fragment in path for _, _, path in proxy.arrivals)


@pytest.mark.parametrize("command", ["ls", "digest", "manifest", "verify"])
def test_ctrl_c_during_a_registry_request_exits_130(
    registry: Registry,
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    command: str,
    tmp_path: Path,
) -> None:
    image = push_image(registry)
    proxy = proxy_for(registry)
    proxy.latency = 120  # every request hangs in the proxy: the command waits for its answer
    target = image.ref.replace(registry.host, proxy.host)
    argv = [command, target.rsplit(":", 1)[0] if command == "ls" else target]
    if command == "verify":
        key = tmp_path / "cosign.pub"
        key.write_text(_PUBLIC_KEY)
        argv += ["--key", str(key)]
    running = Running(argv, env=_env(tmp_path))
    running.wait_until(_arrived(proxy, "/v2/"))
    _assert_interrupted(running, running.stop())


def test_ctrl_c_during_a_slow_copy_exits_130(
    registry: Registry,
    registry2: Registry,
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=4 << 20)
    proxy = proxy_for(registry)
    proxy.throttle_bytes_per_second = 64 << 10  # a minute for the layer
    source = image.ref.replace(registry.host, proxy.host)
    running = Running(["copy", source, f"{registry2.host}/{repo('slow')}:v1"])
    running.wait_until(lambda: proxy.bytes_down["GET"] > 0)
    _assert_interrupted(running, running.stop())
    assert running.process.stdout is not None
    assert running.process.stdout.read() == ""


@contextlib.contextmanager
def _silent_server() -> Iterator[tuple[str, Callable[[], bool]]]:
    """A TCP server that accepts connections and never answers; (address, accepted yet?)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", lambda: bool(accepted)
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


@pytest.mark.parametrize(
    "argv",
    [["catalog", "ls", "--catalog-url"], ["scan", "status", "--catalog-url"]],
    ids=["catalog ls", "scan status"],
)
def test_ctrl_c_waiting_for_the_server_exits_130(argv: list[str], tmp_path: Path) -> None:
    # These commands leave Ctrl-C to the root (click alone printed "Aborted!" and exited 1).
    with _silent_server() as (address, accepted):
        running = Running([*argv, f"http://{address}"], env=_env(tmp_path))
        running.wait_until(accepted)
        _assert_interrupted(running, running.stop())


def test_ctrl_c_stops_scan_on_intervals_with_130(
    registry: Registry,
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    image = push_image(registry)
    proxy = proxy_for(registry)
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    watches = tmp_path / "watches.yaml"
    watches.write_text(
        f"watches:\n  - name: web\n    image: {proxy.host}/{repository}\n    interval: 1h\n"
    )
    running = Running(["scan", "--config", str(watches)], env=_env(tmp_path))
    running.wait_until(_arrived(proxy, "/tags/list"))  # it scans: the loop is running
    _assert_interrupted(running, running.stop())


def _listening(running: Running) -> Callable[[], bool]:
    return lambda: ": listening on " in running.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("daemon", ["registry serve", "catalog serve"])
def test_a_daemon_stops_with_130_on_ctrl_c_and_0_on_sigterm(
    daemon: str, signum: int, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    argv = {
        "registry serve": ["registry", "serve", "--root", str(tmp_path / "r"), "--address"],
        "catalog serve": ["catalog", "serve", "--http-address"],
    }[daemon]
    running = Running([*argv, address], env=_env(tmp_path))
    running.wait_until(_listening(running))
    _assert_stopped(running, running.stop(signum), signum)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    with contextlib.ExitStack() as cleanup:
        users = {"alice": ("alice@example.com", [ENGINEERING])}
        yield start_identity(tmp_path_factory.mktemp("identity"), users, cleanup)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_issuer_stops_with_130_on_ctrl_c_and_0_on_sigterm(
    identity: Identity, tmp_path: Path, signum: int
) -> None:
    config = identity.idp.config
    address = f"127.0.0.1:{free_port()}"
    running = Running(
        ["idp", "serve", "--config", str(config), "--address", address], env=_env(tmp_path)
    )
    running.wait_until(_listening(running))
    _assert_stopped(running, running.stop(signum), signum)


def _assert_stopped(running: Running, code: int, signum: int) -> None:
    """Ctrl-C: exit 130 and its one line; SIGTERM (a pod's or a unit's stop): exit 0, quietly.

    uvicorn re-raised SIGTERM after its graceful stop, so catalog serve and idp serve died of
    it (143, a pod ending in "Error") where imgctl server and registry serve exited 0.
    """
    if signum == signal.SIGINT:
        _assert_interrupted(running, code)
        return
    assert code == 0, running.stderr
    assert "Traceback" not in running.stderr
    assert "imgctl: interrupted" not in running.stderr


def test_ctrl_c_stops_the_server_with_130_and_sigterm_with_0(
    identity: Identity, registry: Registry, registry2: Registry, tmp_path: Path
) -> None:
    env = server_env(identity.idp, registry, registry2)
    for signum, expected in ((signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, 0)):
        server = launch_server(tmp_path, env)
        process, _, _, log = server
        try:
            wait_server(server)
            process.send_signal(signum)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        text = log.read_text()
        assert code == expected, text
        assert "Traceback" not in text
        if signum == signal.SIGINT:
            assert text.splitlines()[-1] == "imgctl: interrupted", text
