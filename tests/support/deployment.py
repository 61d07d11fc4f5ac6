"""`imgctl server` as a test subprocess: its environment, start, stop, and signed-in callers.

Shared by the end-to-end modules (test_server, test_scan_server, test_server_faults): one
server is a real `imgctl server` process on loopback ports, configured like production through
environment variables, with the built-in issuer (`imgctl idp serve`) and a real ssh-agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from imgctl.v1 import imgctl_pb2 as pb
from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

from .idp import Idp, start_idp
from .registry import Registry, free_port
from .sshkeys import Agent, Key, keygen

AUDIENCE = "https://imgctl.example.com"
SECRET = "server-test-client-secret"
ENGINEERING = "engineering@example.com"
OPS = "ops@example.com"


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers; kill the process and fail if it exits or takes 60 s."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"server did not start: {log.read_text()}") from None
            time.sleep(0.05)


def server_env(idp: Idp, dev: Registry, prod: Registry) -> dict[str, str]:
    """The environment of an `imgctl server` promoting from dev to prod/release."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")} | {
        "HOME": str(Path(idp.config).parent / "server-home"),
        "OIDC_ISSUER_URL": idp.url,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_ALLOWED_GROUPS": ENGINEERING,
        "IMGCTL_REGISTRY_DEV": dev.host,
        "IMGCTL_REGISTRY_PROD": f"{prod.host}/release",
        "IMGCTL_DEFAULT_SOURCE": "dev",
        "IMGCTL_ENABLE_IAAS_AUTH": "false",
    }


def start_server(
    root: Path, env: dict[str, str], *flags: str
) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """`imgctl server` on free ports; (process, gRPC address, HTTP address, log file)."""
    server = launch_server(root, env, *flags)
    wait_server(server)
    return server


def launch_server(
    root: Path, env: dict[str, str], *flags: str
) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """Start `imgctl server` without waiting for it (several can then start at once)."""
    from ..conftest import IMGCTL

    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = root / f"server-{grpc_address.rsplit(':', 1)[1]}.log"
    process = subprocess.Popen(
        [IMGCTL, "server", "--bind-address", grpc_address, "--http-address", http_address, *flags],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, grpc_address, http_address, log


def wait_server(server: tuple[subprocess.Popen[bytes], str, str, Path]) -> None:
    """Wait until a launched server answers /healthz."""
    process, _, http_address, log = server
    wait_http(f"http://{http_address}/healthz", process, log)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child and wait for it (kill it if it will not go)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no grace, no clean-up, like a node dying or the OOM killer."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class Identity:
    """The built-in issuer and an ssh-agent holding each user's key."""

    idp: Idp
    agent: Agent
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A client's environment: its own HOME, the agent, the issuer's client secret."""
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        return (
            base
            | {
                "HOME": str(self.home),
                "SSH_AUTH_SOCK": self.agent.socket,
                "IMGCTL_CLIENT_SECRET": SECRET,
                "USER": "nobody",
            }
            | extra
        )

    def token(self, user: str) -> str:
        """An OIDC token for ``user``, through `imgctl token` (SSH-signed JWT, exchange)."""
        from ..conftest import IMGCTL

        result = subprocess.run(
            [IMGCTL, "token", "-u", user, "--dex-url", self.idp.url, "--audience", AUDIENCE],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


def start_identity(
    root: Path, users: dict[str, tuple[str, list[str]]], cleanup: contextlib.ExitStack
) -> Identity:
    """Keys for ``users`` (name -> (email, groups)), the issuer and an agent holding the keys."""
    from ..conftest import IMGCTL

    keys: dict[str, Key] = {name: keygen(root / "keys", "ed25519", name=name) for name in users}
    idp = start_idp(
        IMGCTL,
        root / "idp",
        {
            name: {"keys": [keys[name].line], "email": email, "groups": groups}
            for name, (email, groups) in users.items()
        },
        audiences=[AUDIENCE],
        secret=SECRET,
    )
    cleanup.callback(idp.stop)
    agent = Agent(root / "agent")
    cleanup.callback(agent.stop)
    agent.add(*keys.values())
    home = root / "client-home"
    home.mkdir(exist_ok=True)
    return Identity(idp, agent, home)


async def grpc_call(
    address: str,
    method: str,
    request: Any,
    *,
    token: str | None = None,
    request_id: str | None = None,
    deadline: float = 60,
) -> tuple[grpc.StatusCode, str, str, Any]:
    """One raw gRPC call with our own request id: (status, details, request id, response)."""
    request_id = request_id or uuid.uuid4().hex
    metadata = [("x-request-id", request_id)]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ImgCtlStub(channel)
        try:
            answer = await getattr(stub, method)(request, metadata=metadata, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or "", request_id, None
    return grpc.StatusCode.OK, "", request_id, answer


def promote_request(ref: str, destination: str = "prod", source: str = "") -> pb.PromoteRequest:
    """A PromoteRequest message."""
    return pb.PromoteRequest(ref=ref, source=source, destination=destination)
