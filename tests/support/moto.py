"""moto's standalone server, and a counting loopback proxy in front of it, for the ECR keychain.

``MotoServer`` runs ``moto_server`` as a subprocess on a free loopback port. ``AwsProxy`` is a
``ScriptedServer`` that forwards every AWS API request to moto and records it (service, region and
operation from the SigV4 ``Authorization`` and ``X-Amz-Target`` headers), so tests count real API
calls. moto has no ECR Public, so the proxy answers ECR Public's GetAuthorizationToken itself, and
it can answer the next requests with a scripted AWS error.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .httpserver import ReceivedRequest, ScriptedServer, response, serve_each

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
PUBLIC_TARGET = "SpencerFrontendService.GetAuthorizationToken"
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` in a subprocess."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not answer within {timeout}s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


@dataclass
class AwsCall:
    """One AWS API request that crossed the proxy."""

    service: str | None
    region: str | None
    target: str | None
    body: bytes
    authorization: str


@dataclass
class AwsProxy:
    """A counting forwarder to moto (``url`` is what AWS_ENDPOINT_URL should be)."""

    upstream: str
    public_expires_at: float = 0.0
    public_token: str = "public-ecr-password"
    calls: list[AwsCall] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    server: ScriptedServer | None = None
    _client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def start(self) -> AwsProxy:
        self._client = httpx.AsyncClient(base_url=self.upstream, trust_env=False, timeout=30)
        self.server = await ScriptedServer(serve_each(self._respond)).start()
        return self

    async def aclose(self) -> None:
        if self.server is not None:
            await self.server.aclose()
        if self._client is not None:
            await self._client.aclose()

    def calls_to(self, service: str) -> list[AwsCall]:
        return [call for call in self.calls if call.service == service]

    async def _respond(self, request: ReceivedRequest) -> bytes:
        authorization = request.header("Authorization") or ""
        scope = _SCOPE.search(authorization)
        target = request.header("X-Amz-Target")
        self.calls.append(
            AwsCall(
                service=scope["service"] if scope else None,
                region=scope["region"] if scope else None,
                target=target,
                body=request.body,
                authorization=authorization,
            )
        )
        json_type = [("Content-Type", "application/x-amz-json-1.1")]
        if self.fail_next:
            status, error = self.fail_next.pop(0)
            return response(status, json.dumps(error).encode(), headers=json_type)
        if target == PUBLIC_TARGET:
            token = base64.b64encode(f"AWS:{self.public_token}".encode()).decode()
            data = {"authorizationToken": token, "expiresAt": self.public_expires_at}
            return response(
                200, json.dumps({"authorizationData": data}).encode(), headers=json_type
            )
        assert self._client is not None
        upstream = await self._client.request(
            request.method,
            request.target,
            headers=[(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP],
            content=request.body,
        )
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
        return response(upstream.status_code, upstream.content, headers=headers)
