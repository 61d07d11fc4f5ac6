"""How the daemons start: the whole configuration checked first, then one "listening on" line.

Issue 22 item 5. `imgctl server` used to print 7 to 15 Alembic INFO lines before anything else
and to stop at the first missing variable (one more run per variable); each daemon announced
itself its own way (or not at all). Now every problem of the configuration is listed in one run,
before any socket or database is opened, and `server`, `idp serve`, `catalog serve` and
`registry serve` each print one line in one format, after their sockets listen.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import IMGCTL
from ..support.registry import free_port

_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSJC8qeQCYs/yrxpcc57KyF03Iaclnu+J+rQax/u/Ke alice"


def _env(home: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return base | {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")} | extra


def _server_env(home: Path) -> dict[str, str]:
    return _env(
        home,
        OIDC_ISSUER_URL="http://127.0.0.1:9/",
        OIDC_AUDIENCE="https://imgctl.example.com",
        IMGCTL_REGISTRY_DEV="127.0.0.1:5000",
        IMGCTL_REGISTRY_PROD="127.0.0.1:5001",
        IMGCTL_DATABASE_URL=f"sqlite:///{home / 'fresh.db'}",
    )


def _idp_config(home: Path) -> Path:
    config = home / "idp.yaml"
    users = {"alice": {"keys": [_SSH_KEY], "email": "alice@example.com"}}
    config.write_text(
        json.dumps({"staticClients": [{"id": "imgctl", "secret": "s"}], "users": users})
    )
    return config


def _daemon(name: str, home: Path, grpc: str, http: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of daemon ``name`` listening on ``grpc``/``http``."""
    if name == "server":
        return ["server", "--bind-address", grpc, "--http-address", http], _server_env(home)
    if name == "catalog serve":
        database = f"sqlite:///{home / 'catalog.db'}"
        return ["catalog", "serve", "--http-address", http, "--database-url", database], _env(home)
    if name == "idp serve":
        env = _env(home, IMGCTL_DATABASE_URL=f"sqlite:///{home / 'idp.db'}")
        return ["idp", "serve", "--config", str(_idp_config(home)), "--address", http], env
    assert name == "registry serve"
    return ["registry", "serve", "--root", str(home / "root"), "--address", http], _env(home)


DAEMONS = ["server", "idp serve", "catalog serve", "registry serve"]


class Running:
    """A daemon started with its stdout and stderr in files, until its listening line."""

    def __init__(self, argv: list[str], env: dict[str, str], home: Path) -> None:
        self.out, self.err = home / "stdout.log", home / "stderr.log"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen([IMGCTL, *argv], env=env, stdout=out, stderr=err)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + 60
        while text not in self.err.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r}: {self.err.read_text()}{self.out.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Running]]:
    running: list[Running] = []
    yield running
    for daemon in running:
        daemon.stop()


def test_the_server_lists_every_configuration_problem_and_opens_nothing(tmp_path: Path) -> None:
    database = tmp_path / "state" / "must-not-exist.db"
    grpc_port, http_port = free_port(), free_port()
    env = _env(
        tmp_path,
        # OIDC_ISSUER_URL missing, OIDC_AUDIENCE set but blank.
        OIDC_AUDIENCE=" ",
        OIDC_LEEWAY="forever",
        IMGCTL_REGISTRY_DEV="https://registry.example.com",
        IMGCTL_REGISTRY_PROD="registry.example.com/prod",
        IMGCTL_DEFAULT_SOURCE="staging",
        IMGCTL_PROMOTION_LEASE="0",
        IMGCTL_DATABASE_URL=f"sqlite:///{database}",
    )
    argv = ["server", "--bind-address", f"127.0.0.1:{grpc_port}"]
    result = subprocess.run(
        [IMGCTL, *argv, "--http-address", f"127.0.0.1:{http_port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "imgctl: error: 5 problems in the configuration:", result.stderr
    problems = lines[1:-1]
    # Each: the variable, what is wrong, what to do.
    assert problems == [
        "  OIDC_ISSUER_URL is not set; "
        "set it to the OIDC issuer's URL, e.g. https://dex.example.com",
        "  OIDC_AUDIENCE is not set; "
        "set it to the audience tokens are issued for (this server's URL)",
        "  OIDC_LEEWAY 'forever' is not a number of seconds between 0 and 300; "
        "unset it for the default (30 s)",
        "  IMGCTL_REGISTRY_DEV='https://registry.example.com' has a URL scheme; "
        "give host[:port][/prefix]",
        "  IMGCTL_PROMOTION_LEASE='0' is not a number of seconds between 1 and 3600; "
        "unset it for the default (60 s)",
    ], result.stderr
    assert lines[-1] == "imgctl server --help lists the environment variables it reads"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # Nothing was opened: no database, no state directory, and both ports are still free.
    assert not database.parent.exists()
    for port in (grpc_port, http_port):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_bad_default_source_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    env = _server_env(tmp_path) | {"IMGCTL_DEFAULT_SOURCE": "staging", "OIDC_AUDIENCE": ""}
    result = subprocess.run(
        [IMGCTL, "server", "--bind-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "  OIDC_AUDIENCE is not set;" in result.stderr
    assert (
        "  IMGCTL_DEFAULT_SOURCE='staging' is not a configured environment; configured: dev, prod"
    ) in result.stderr
    assert not (tmp_path / "fresh.db").exists()


def test_one_problem_is_one_line(tmp_path: Path) -> None:
    env = _server_env(tmp_path)
    del env["OIDC_ISSUER_URL"]
    result = subprocess.run(
        [IMGCTL, "server", "--bind-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "imgctl: error: OIDC_ISSUER_URL is not set; set it to the OIDC issuer's URL, "
        "e.g. https://dex.example.com\n"
    )
    assert not (tmp_path / "fresh.db").exists()


_LINE = re.compile(
    r"imgctl (server|idp serve|catalog serve|registry serve): listening on "
    r"(grpc|http) 127\.0\.0\.1:(\d+)(?:, http 127\.0\.0\.1:(\d+))?"
)


def _answers_http(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status > 0
    finally:
        connection.close()


@pytest.mark.parametrize("daemon", DAEMONS)
def test_each_daemon_prints_its_listening_line_first_with_the_bound_ports(
    daemon: str, tmp_path: Path, started: list[Running]
) -> None:
    # Port 0: the kernel picks, and only the line can say which port it was.
    argv, env = _daemon(daemon, tmp_path, "127.0.0.1:0", "127.0.0.1:0")
    running = Running(argv, env, tmp_path)
    started.append(running)
    running.wait_for(" listening on ")
    lines = running.err.read_text().splitlines()
    # The line comes first: no Alembic line at all, though each daemon with a database
    # migrated a fresh one, and no warning about plain gRPC on loopback (the tokens do not
    # leave the machine; test_plain_grpc_is_a_warning_off_loopback_only).
    index = next(i for i, line in enumerate(lines) if " listening on " in line)
    assert index == 0, lines
    assert "alembic" not in running.err.read_text() + running.out.read_text()
    found = _LINE.fullmatch(lines[index])
    assert found is not None, lines[index]
    assert found[1] == daemon
    ports = [int(port) for port in found.groups()[2:] if port]
    assert all(port != 0 for port in ports)
    if daemon == "server":
        grpc_port, http_port = ports
        assert found[2] == "grpc"
        with socket.create_connection(("127.0.0.1", grpc_port), timeout=5):
            pass
    else:
        [http_port] = ports
        assert found[2] == "http"
    # True when printed: the port answers HTTP.
    assert _answers_http(http_port)


def test_the_migrations_are_shown_at_debug_level_after_the_line(
    tmp_path: Path, started: list[Running]
) -> None:
    argv, env = _daemon("server", tmp_path, "127.0.0.1:0", "127.0.0.1:0")
    running = Running(argv, env | {"IMGCTL_LOG_LEVEL": "debug"}, tmp_path)
    started.append(running)
    running.wait_for("Running upgrade  -> 0001")
    output = running.err.read_text()
    assert output.index("imgctl server: listening on ") < output.index("Running upgrade")


def test_plain_grpc_is_a_warning_off_loopback_only(tmp_path: Path, started: list[Running]) -> None:
    # On every interface, tokens can cross a network in clear text: warned, naming the port it
    # bound (not the 0 it was given). On loopback they cannot: no warning (above).
    argv, env = _daemon("server", tmp_path, "0.0.0.0:0", "127.0.0.1:0")
    running = Running(argv, env, tmp_path)
    started.append(running)
    running.wait_for(" listening on ")
    lines = running.err.read_text().splitlines()
    found = re.search(r"listening on grpc 0\.0\.0\.0:(\d+), http ", "\n".join(lines))
    assert found is not None, lines
    warnings = [line for line in lines if " WARNING " in line]
    assert len(warnings) == 1, lines
    assert (
        f"serving gRPC WITHOUT TLS on 0.0.0.0:{found[1]}: tokens cross the network" in (warnings[0])
    )


def test_a_bad_log_level_is_a_configuration_problem(tmp_path: Path) -> None:
    env = _server_env(tmp_path) | {"IMGCTL_LOG_LEVEL": "loud", "OIDC_AUDIENCE": ""}
    result = subprocess.run(
        [IMGCTL, "server", "--bind-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "  IMGCTL_LOG_LEVEL='loud' is not a log level; use debug, info or warning" in (
        result.stderr
    )


@pytest.mark.parametrize("daemon", DAEMONS)
def test_each_daemon_names_the_ports_it_was_given(
    daemon: str, tmp_path: Path, started: list[Running]
) -> None:
    grpc, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    argv, env = _daemon(daemon, tmp_path, grpc, http)
    running = Running(argv, env, tmp_path)
    started.append(running)
    expected = {
        "server": f"imgctl server: listening on grpc {grpc}, http {http}",
        "idp serve": f"imgctl idp serve: listening on http {http}",
        "catalog serve": f"imgctl catalog serve: listening on http {http}",
        "registry serve": f"imgctl registry serve: listening on http {http}",
    }[daemon]
    running.wait_for(expected)
    assert running.err.read_text().count(" listening on ") == 1


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port held by another listener."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("daemon", [*DAEMONS, "server --bind-address"])
def test_a_bind_error_is_one_line(daemon: str, occupied: int, tmp_path: Path) -> None:
    here = f"127.0.0.1:{occupied}"
    if daemon == "server --bind-address":
        argv, env = _daemon("server", tmp_path, here, f"127.0.0.1:{free_port()}")
    else:
        argv, env = _daemon(daemon, tmp_path, f"127.0.0.1:{free_port()}", here)
    flag = "--bind-address" if daemon == "server --bind-address" else None
    flag = flag or ("--http-address" if daemon in ("server", "catalog serve") else "--address")
    result = subprocess.run([IMGCTL, *argv], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"imgctl: error: cannot listen on {here} ({flag}): Address already in use; "
        "another process listens there: stop it or choose another port\n"
    )
    assert result.stdout == ""


def test_the_help_lists_the_environment_with_the_required_variables() -> None:
    result = subprocess.run(
        [IMGCTL, "server", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("\nEnvironment:\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^  (\S+)\s+(.*)$", section, re.MULTILINE)
    described = {variable: text for variable, text in rows}
    for required in ("OIDC_ISSUER_URL", "OIDC_AUDIENCE", "IMGCTL_REGISTRY_<NAME>"):
        assert described[required].startswith("(required"), section
    for optional in ("OIDC_ALLOWED_GROUPS", "IMGCTL_DATABASE_URL", "IMGCTL_DEFAULT_SOURCE"):
        assert not described[optional].startswith("(required"), section


def _console_block(document: str, prompt: str) -> tuple[str, list[str]]:
    """The command after ``prompt`` in a console block of ``document`` and the lines it prints."""
    text = (Path(__file__).resolve().parents[2] / "docs" / document).read_text()
    block = text.split(f"```console\n{prompt}", 1)[1].split("```", 1)[0]
    command, *output = block.rstrip("\n").split("\n")
    return prompt + command, output


def test_the_documented_list_of_problems_is_what_the_server_prints(tmp_path: Path) -> None:
    command, expected = _console_block("server.md", "$ env -u OIDC_ISSUER_URL")
    env = _env(tmp_path, IMGCTL_DATABASE_URL=f"sqlite:///{tmp_path / 'never.db'}")
    result = subprocess.run(
        ["bash", "-c", command.removeprefix("$ ").replace("imgctl server", f"{IMGCTL} server")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == expected
    assert not (tmp_path / "never.db").exists()


def test_the_documented_listening_lines_have_the_format_of_the_daemons() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    names = ("server.md", "registry.md", "authentication.md", "catalog.md")
    text = "\n".join((docs / name).read_text() for name in names)
    lines = re.findall(r"imgctl [a-z ]+: listening on [^`\n]+", text)
    daemons = {line.split(":")[0] for line in lines}
    assert daemons == {f"imgctl {daemon}" for daemon in DAEMONS}, lines
    for line in lines:
        assert _LINE.fullmatch(line.rstrip()), line
