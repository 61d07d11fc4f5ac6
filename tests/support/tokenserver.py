"""A registry token server (the distribution ``auth: token`` protocol) for tests.

It issues RS256 JWTs whose header carries the signing certificate (``x5c``), which the registry
trusts through ``rootcertbundle``. Every request is recorded so tests can check which scopes a
client asked for and how often.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .httpd import CheckedHTTPServer

ISSUER = "imgctl-test-issuer"
SERVICE = "imgctl-test-registry"


@dataclass
class TokenRequest:
    method: str
    user: str | None
    scopes: list[str]
    grant: str  # "basic", "anonymous" or "refresh_token"


@dataclass
class TokenServer:
    """Issues tokens for ``users`` (name -> password); anonymous gets ``anonymous_actions``."""

    directory: Path
    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    anonymous_actions: tuple[str, ...] = ()
    lifetime: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    port: int = 0
    _server: CheckedHTTPServer | None = None

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgctl test token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = self.directory / "token-signer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth(self) -> dict[str, str]:
        """The ``auth.token`` section for the registry's config."""
        return {
            "realm": self.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(self.cert_path),
        }

    def issue(self, subject: str, scopes: list[str], granted_all: bool) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if not granted_all:
                actions = [a for a in actions if a in self.anonymous_actions]
            access.append({"type": kind, "name": name, "actions": actions})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": SERVICE,
            "sub": subject,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self._x5c]})

    def start(self) -> TokenServer:
        server_ref = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                scopes = query.get("scope", [])
                header = self.headers.get("Authorization", "")
                user = None
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server_ref.users.get(name) != password:
                        server_ref.requests.append(TokenRequest("GET", name, scopes, "denied"))
                        self._reply(401, {"details": "invalid credentials"})
                        return
                    user = name
                server_ref.requests.append(
                    TokenRequest("GET", user, scopes, "basic" if user else "anonymous")
                )
                token = server_ref.issue(user or "anonymous", scopes, user is not None)
                self._reply(200, {"token": token, "expires_in": server_ref.lifetime})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                scopes = " ".join(form.get("scope", [])).split()
                refresh = form.get("refresh_token", [""])[0]
                user = server_ref.refresh_tokens.get(refresh)
                if form.get("grant_type", [""])[0] != "refresh_token" or user is None:
                    server_ref.requests.append(TokenRequest("POST", None, scopes, "denied"))
                    self._reply(401, {"error": "invalid_grant"})
                    return
                server_ref.requests.append(TokenRequest("POST", user, scopes, "refresh_token"))
                token = server_ref.issue(user, scopes, True)
                self._reply(200, {"access_token": token, "expires_in": server_ref.lifetime})

        self._server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
            server.check()
