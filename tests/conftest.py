"""Fixtures: real registries (open, htpasswd, token auth, TLS), a fault proxy, test images."""

from __future__ import annotations

import itertools
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import trustme

from imgctl.remote import ClientOptions, RegistryClient
from imgctl.store import CatalogStore

from .support.layout import BuiltImage, build_image
from .support.postgres import BACKENDS, scratch_database
from .support.proxy import FaultProxy
from .support.registry import Registry
from .support.skopeo import push_layout
from .support.tokenserver import TokenServer

USER, PASSWORD = "alice", "correct horse battery staple"
_VENV_IMGCTL = Path(sys.executable).parent / "imgctl"
IMGCTL = str(_VENV_IMGCTL) if _VENV_IMGCTL.exists() else (shutil.which("imgctl") or "imgctl")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A scratch database of each backend (SQLite, PostgreSQL) that no other test sees."""
    with scratch_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[CatalogStore]:
    """The catalog store on each backend (modules needing another store define their own)."""
    catalog = await CatalogStore.open(db_url)
    try:
        yield catalog
    finally:
        await catalog.aclose()


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    started: list[Registry] = []
    counter = itertools.count()

    def start(**kwargs: object) -> Registry:
        root = tmp_path_factory.mktemp(f"registry{next(counter)}")
        registry = Registry(root, **kwargs).start()  # type: ignore[arg-type]
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture(scope="session")
def registry(registries: Callable[..., Registry]) -> Registry:
    return registries()


@pytest.fixture(scope="session")
def registry2(registries: Callable[..., Registry]) -> Registry:
    return registries()


@pytest.fixture(scope="session")
def htpasswd_registry(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> Registry:
    path = tmp_path_factory.mktemp("htpasswd") / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{USER}:{hashed}\n")
    return registries(htpasswd=path)


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("tokens"),
        users={USER: PASSWORD},
        refresh_tokens={"refresh-for-alice": USER},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(registries: Callable[..., Registry], token_server: TokenServer) -> Registry:
    return registries(token=token_server.registry_auth())


@dataclass
class Tls:
    ca: trustme.CA
    ca_file: Path
    cert_dir: Path  # for skopeo --cert-dir
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_dir = directory / "certs.d"
    cert_dir.mkdir()
    ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    cert, key = directory / "server.pem", directory / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    return Tls(ca, ca_file, cert_dir, cert, key)


@pytest.fixture(scope="session")
def tls_registry(registries: Callable[..., Registry], tls: Tls) -> Registry:
    return registries(tls_cert=tls.cert, tls_key=tls.key, scheme="https")


@pytest.fixture
def proxy_for() -> Iterator[Callable[[Registry], FaultProxy]]:
    proxies: list[FaultProxy] = []

    def start(registry: Registry) -> FaultProxy:
        proxy = FaultProxy(registry.host).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def repo() -> Callable[[str], str]:
    """Unique repository names, so tests sharing a registry never see each other's images."""

    def name(prefix: str = "app") -> str:
        return f"test/{prefix}-{uuid.uuid4().hex[:10]}"

    return name


@dataclass
class PushedImage:
    ref: str  # HOST/REPO:TAG
    built: BuiltImage

    @property
    def digest(self) -> str:
        return self.built.digest


@pytest.fixture(scope="session")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BuiltImage]:
    counter = itertools.count()

    def make(**kwargs: object) -> BuiltImage:
        path = tmp_path_factory.mktemp("layouts") / f"image{next(counter)}"
        return build_image(path, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def push_image(
    layouts: Callable[..., BuiltImage], repo: Callable[[str], str]
) -> Callable[..., PushedImage]:
    """Build a fresh image and push it with skopeo (the independent client)."""

    def push(
        registry: Registry,
        *,
        repository: str | None = None,
        tag: str = "v1",
        creds: str | None = None,
        cert_dir: Path | None = None,
        **kwargs: object,
    ) -> PushedImage:
        built = layouts(tag=tag, **kwargs)
        ref = f"{registry.host}/{repository or repo('src')}:{tag}"
        push_layout(built.oci_ref, ref, creds=creds, cert_dir=cert_dir)
        return PushedImage(ref, built)

    return push


FAST_RETRIES = ClientOptions(backoff=0.01, max_backoff=0.05)


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    async with RegistryClient(options=FAST_RETRIES) as c:
        yield c
