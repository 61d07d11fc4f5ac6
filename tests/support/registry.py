"""Run real CNCF distribution registries (Debian's ``docker-registry``) for tests and benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BINARY = "docker-registry"


def require_binary(name: str) -> str:
    """The path of a referee binary; a missing one fails the test that needs it, never skips it."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed and this test needs it: run the suite with "
            "`bash scripts/test.sh`, which installs it (or: apt-get install docker-registry skopeo)"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Registry:
    """A running docker-registry on a loopback port."""

    root: Path
    port: int = 0
    scheme: str = "http"
    htpasswd: Path | None = None
    token: dict[str, str] | None = None  # realm, service, issuer, rootcertbundle
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_cas: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: imgctl-test-secret",
        ]
        if self.tls_cert and self.tls_key:
            lines += ["  tls:", f"    certificate: {self.tls_cert}", f"    key: {self.tls_key}"]
            if self.client_cas:
                lines.append("    clientcas:")
                lines += [f"      - {ca}" for ca in self.client_cas]
        if self.htpasswd:
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: imgctl-test",
                f"    path: {self.htpasswd}",
            ]
        elif self.token:
            lines += ["auth:", "  token:"]
            lines += [f"    {k}: {v}" for k, v in self.token.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> Registry:
        require_binary(REGISTRY_BINARY)
        self.storage.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(5):
            self.port = free_port()
            config = self.root / "config.yml"
            config.write_text(self._config())
            log = open(self.root / "registry.log", "wb")  # noqa: SIM115 - kept for the process
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_for_port(self.port, self.process)
                return self
            except RuntimeError as exc:  # port raced away: try another
                last_error = exc
                self.stop()
        raise RuntimeError(f"docker-registry did not start: {last_error}; see {self.root}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def blob_path(self, digest: str) -> Path:
        hex_ = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def tag_link(self, repository: str, tag: str) -> Path:
        return (
            self.storage
            / "docker/registry/v2/repositories"
            / repository
            / "_manifests/tags"
            / tag
            / "current/link"
        )

    def has_tag(self, repository: str, tag: str) -> bool:
        return self.tag_link(repository, tag).exists()


async def add_tags(ref: str, tags: list[str]) -> None:
    """Point ``tags`` at the manifest of ``ref`` (HOST/REPO:TAG), 16 PUTs at a time."""
    import asyncio

    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, RegistryClient

    source = Reference.parse(ref)
    async with RegistryClient(options=ClientOptions(backoff=0.01, max_backoff=0.05)) as client:
        fetched = await client.get_manifest(source)
        gate = asyncio.Semaphore(16)

        async def put(tag: str) -> None:
            async with gate:
                await client.put_manifest(
                    source.with_tag(tag), fetched.data, fetched.parsed.media_type
                )

        await asyncio.gather(*(put(tag) for tag in tags))
