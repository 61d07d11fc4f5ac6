"""A real `imgctl server` whose database was filled by real promotions, for the web pages' tests.

One docker-registry holds four environments under prefixes (ci, dev, staging, prod: CI pushes
into ci, nothing is ever promoted into it); the built-in issuer signs in three users; the server
signs and attests what it promotes (so catalog entries say signed/attested), has a policy file
(prod needs ops@example.com) and its own SQLite database. :func:`start_web_deployment` pushes
images with skopeo and promotes them through the gRPC API as those users, in the order of
:data:`SCENARIO`, plus a denied and a failed attempt, and returns what it did
(:class:`WebDeployment`) so tests can check the pages against the catalog and audit rows.

Use it from a test module::

    from ..support.webdeploy import web_deployment  # noqa: F401  (the module-scoped fixture)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
import httpx
import pytest

from .deployment import (
    AUDIENCE,
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    promote_request,
    start_identity,
    start_server,
    stop_process,
)
from .layout import build_image
from .registry import Registry
from .skopeo import push_layout

_T = TypeVar("_T")

ENVIRONMENTS: Final = ("ci", "dev", "staging", "prod")
"""Configured environments: CI pushes into ci; the pipeline is ci -> dev -> staging -> prod."""

USERS: Final = {
    "alice": ("alice@example.com", [ENGINEERING]),
    "olga": ("olga@example.com", [ENGINEERING, OPS]),
    "carl": ("carl@example.com", ["contractors@example.com"]),
}
"""alice may promote anywhere but prod, olga everywhere, carl (not allowed in) nowhere."""

SCENARIO: Final = (
    # (user, repository:tag, source, destination)
    ("alice", "shop/web:1.0.0", "ci", "dev"),
    ("alice", "shop/web:1.0.0", "dev", "staging"),
    ("olga", "shop/web:1.0.0", "staging", "prod"),
    ("alice", "shop/web:1.1.0", "ci", "dev"),
    ("alice", "shop/web:1.1.0", "dev", "staging"),
    ("alice", "shop/api:2.0.0", "ci", "dev"),
    ("alice", "tools/cli:0.1.0", "ci", "dev"),
    ("alice", "tools/cli:0.1.0", "dev", "staging"),
    ("olga", "tools/cli:0.1.0", "staging", "prod"),
    ("alice", "shop/web:1.2.0", "ci", "dev"),
)
"""The promotions that succeed, in order. Afterwards shop/web is 1.2.0 in dev, 1.1.0 in staging
(one version behind dev) and 1.0.0 in prod (one behind staging: 1.1.0 came to staging after
1.0.0); shop/api is only in dev; tools/cli is the same digest everywhere."""

REFUSED: Final = (
    # alice may not promote to prod (policy): denied; a tag that is not there: failed/invalid.
    ("alice", "shop/web:1.1.0", "staging", "prod"),
    ("alice", "shop/web:9.9.9", "ci", "dev"),
)


@dataclass(frozen=True)
class Promoted:
    """One promotion the fixture asked for, and how the server answered."""

    user: str
    ref: str
    source: str
    destination: str
    request_id: str
    status: str  # the gRPC status name: OK, PERMISSION_DENIED, NOT_FOUND...


@dataclass
class WebDeployment:
    """The running server, who can sign in, and what was promoted."""

    registry: Registry
    identity: Identity
    grpc: str
    http_address: str
    process: Any
    log: Path
    database: str
    env: dict[str, str]
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # "shop/web:1.0.0" -> digest
    promotions: list[Promoted] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The HTTP side's base URL (pages, /api/, catalog)."""
        return f"http://{self.http_address}"

    def name(self, environment: str, repository: str) -> str:
        """The catalog name of ``repository`` in ``environment`` (REGISTRY/PREFIX/PATH)."""
        return f"{self.registry.host}/{environment}/{repository}"

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        """GET ``path`` of the HTTP side (with a bearer token), redirects not followed."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def get_json(self, path: str, token: str | None = None) -> Any:
        """GET ``path`` as JSON; it must answer 200."""
        answer = self.get(path, token)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        return answer.json()


def run_async(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """``asyncio.run`` in a thread of its own: Playwright's sync API holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _promote(deployment: WebDeployment, user: str, ref: str, source: str, destination: str) -> None:
    status, details, request_id, _ = run_async(
        lambda: grpc_call(
            deployment.grpc,
            "Promote",
            promote_request(ref, destination, source),
            token=deployment.tokens[user],
        )
    )
    deployment.promotions.append(Promoted(user, ref, source, destination, request_id, status.name))
    if (user, ref, source, destination) in SCENARIO:
        assert status == grpc.StatusCode.OK, f"{ref} {source}->{destination}: {details}"


def _signing_key(directory: Path) -> Path:
    """A P-256 key in a PEM file (what --sign-key takes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "release.key"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def start_web_deployment(
    root: Path, registry: Registry, cleanup: contextlib.ExitStack, *flags: str
) -> WebDeployment:
    """Push the scenario's images into ci, start the server, promote them; see the module."""
    identity = start_identity(root / "identity", dict(USERS), cleanup)
    key = _signing_key(root / "keys")
    policy = root / "policy.yaml"
    policy.write_text("destinations:\n  prod: [ops@example.com]\n")
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env = base | {
        "HOME": str(root / "server-home"),
        "OIDC_ISSUER_URL": identity.idp.url,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_ALLOWED_GROUPS": ENGINEERING,
        "IMGCTL_ENABLE_IAAS_AUTH": "false",
        "IMGCTL_POLICY_FILE": str(policy),
        "IMGCTL_SIGN_KEY": str(key),
        "IMGCTL_STATE_DIR": str(root / "state"),
        "IMGCTL_DATABASE_URL": f"sqlite:///{root / 'state' / 'imgctl.db'}",
    }
    for name in ENVIRONMENTS:
        env[f"IMGCTL_REGISTRY_{name.upper()}"] = f"{registry.host}/{name}"
    (root / "state").mkdir(parents=True, exist_ok=True)

    digests: dict[str, str] = {}
    for ref in dict.fromkeys(ref for _, ref, _, _ in SCENARIO):
        built = build_image(
            root / "layouts" / ref.replace("/", "_").replace(":", "_"),
            tag=ref.split(":")[1],
            platforms=None,
            layers=1,
            layer_size=512,
        )
        push_layout(built.oci_ref, f"{registry.host}/ci/{ref}")
        digests[ref] = built.digest

    process, grpc_address, http_address, log = start_server(root, env, *flags)
    cleanup.callback(stop_process, process)
    deployment = WebDeployment(
        registry=registry,
        identity=identity,
        grpc=grpc_address,
        http_address=http_address,
        process=process,
        log=log,
        database=env["IMGCTL_DATABASE_URL"],
        env=env,
        root=root,
        digests=digests,
    )
    deployment.tokens = {user: identity.token(user) for user in USERS}
    for user, ref, source, destination in SCENARIO:
        _promote(deployment, user, ref, source, destination)
    for user, ref, source, destination in REFUSED:
        _promote(deployment, user, ref, source, destination)
    return deployment


@pytest.fixture(scope="module")
def web_deployment(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> Iterator[WebDeployment]:
    """The deployment of this module (see :func:`start_web_deployment`)."""
    with contextlib.ExitStack() as cleanup:
        yield start_web_deployment(tmp_path_factory.mktemp("web"), registry, cleanup)
