"""Registry commands: turn flags into a client, run the call, print the result."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.authn import Keychain
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, CopyProgress, CopyResult, RegistryClient

_T = TypeVar("_T")


@dataclass(frozen=True)
class Connection:
    """Flags every registry command shares (their env variables are resolved by Typer)."""

    insecure_registries: list[str] = field(default_factory=list)
    ca_cert_paths: list[Path] = field(default_factory=list)
    client_cert: Path | None = None
    client_key: Path | None = None
    verify_certs: bool | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    anonymous: bool = False
    config: Path | None = None
    rate_limit: float | None = None
    burst: int = 5
    retries: int = 5

    def settings(self) -> tuple[Keychain, ClientOptions]:
        """The keychain and client options: flags and env over the config file."""
        import os

        from imgctl.authn import default_keychain, flag_credential
        from imgctl.remote import ClientOptions
        from imgctl.remote.config import (
            default_config_path,
            insecure_hosts,
            load_registry_config,
            resolve_tls,
        )

        home = Path.home()
        path = self.config or default_config_path(os.environ, home)
        config = load_registry_config(path, required=self.config is not None)
        tls = resolve_tls(
            config,
            ca_cert_paths=[str(p) for p in self.ca_cert_paths],
            client_cert=str(self.client_cert) if self.client_cert else None,
            client_key=str(self.client_key) if self.client_key else None,
            verify_certs=self.verify_certs,
        )
        unverified = [h for h, c in tls.hosts.items() if not c.verify]
        if not tls.default.verify or unverified:
            where = "any registry" if not tls.default.verify else ", ".join(unverified)
            warn(
                f"TLS certificates are NOT verified for {where}: anyone on the network path "
                "can read and change what is copied, and see the credentials sent"
            )
        keychain = default_keychain(
            os.environ,
            home,
            flags=flag_credential(self.username, self.password, self.token),
            anonymous=self.anonymous,
        )
        options = ClientOptions(
            insecure_registries=insecure_hosts(config, self.insecure_registries),
            tls=tls,
            rate_limit=self.rate_limit,
            burst=self.burst,
            retries=self.retries,
        )
        return keychain, options

    def client(self) -> RegistryClient:
        """Build the registry client these flags describe."""
        from imgctl.remote import RegistryClient

        keychain, options = self.settings()
        return RegistryClient(keychain, options)


def parse_bool(flag: str, value: str | None) -> bool | None:
    """A true/false flag value (None when not given); anything else fails with one line."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    fail(f"{flag} takes true or false, not {value!r}")


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    print(f"imgctl: warning: {message}", file=sys.stderr)


# Exit statuses of every command (README: "Exit codes").
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNAUTHENTICATED = 3
EXIT_DENIED = 4
EXIT_NOT_FOUND = 5
EXIT_UNAVAILABLE = 6


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one error line and exit with ``code``."""
    print(f"imgctl: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def run(connection: Connection, work: Callable[[RegistryClient], Awaitable[_T]]) -> _T:
    """Run ``work`` with a client; user errors become one line on stderr and exit code 1."""
    import asyncio

    async def main() -> _T:
        async with connection.client() as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ImgctlError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("imgctl: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def parse_ref(value: str, *, repository: bool = False) -> Reference:
    """Parse a reference from the command line, failing with one clear line."""
    from imgctl.oci import Reference

    try:
        return Reference.parse_repository(value) if repository else Reference.parse(value)
    except ImgctlError as exc:
        fail(str(exc))


def read_pairs(path: Path) -> list[tuple[Reference, Reference]]:
    """Read 'SRC DST' lines; blank lines and # comments are skipped."""
    from imgctl._internal.files import read_text
    from imgctl.oci import Reference

    try:
        text = read_text(path, "pair list")
    except ImgctlError as exc:
        fail(str(exc))
    pairs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            fail(
                f"{path}:{number}: expected 'SRC DST', got {len(fields)} field(s): {raw.strip()!r}"
            )
        try:
            pairs.append((Reference.parse(fields[0]), Reference.parse(fields[1])))
        except ImgctlError as exc:
            fail(f"{path}:{number}: {exc}")
    if not pairs:
        fail(f"{path}: no 'SRC DST' pairs found")
    return pairs


def copy(
    connection: Connection,
    source: str | None,
    destination: str | None,
    from_file: Path | None,
    *,
    jobs: int,
    blob_jobs: int,
    chunk_size: int | None,
    json_output: bool,
) -> None:
    """``imgctl copy``."""
    from imgctl.remote import CopyOptions, CopyProgress, copy_images

    if from_file is not None:
        if source or destination:
            fail("give either SRC DST or --from-file, not both")
        pairs = read_pairs(from_file)
    elif source and destination:
        pairs = [(parse_ref(source), parse_ref(destination))]
    else:
        fail("copy needs SRC and DST (or --from-file FILE)")

    options = CopyOptions(image_concurrency=jobs, blob_concurrency=blob_jobs, chunk_size=chunk_size)
    progress = CopyProgress()
    with _progress_display(progress, enabled=not json_output and sys.stderr.isatty()):
        results = run(connection, lambda client: copy_images(client, pairs, options, progress))
    _report(results, json_output)
    if not all(r.ok for r in results):
        raise SystemExit(1)


@contextmanager
def _progress_display(progress: CopyProgress, *, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("copying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images, {task.fields[copied]} streamed"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("copy", total=None, copied=_mib(0))

        def update(p: CopyProgress) -> None:
            bar.update(
                task, total=p.images_total, completed=p.images_done, copied=_mib(p.bytes_copied)
            )

        progress.on_change = update
        yield


def _report(results: list[CopyResult], json_output: bool) -> None:
    if json_output:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return
    if len(results) == 1 and not results[0].ok:
        print(f"imgctl: error: {results[0].error}", file=sys.stderr)
        return
    for r in results:
        if r.ok:
            detail = (
                f"{r.blobs_copied} blobs copied ({_mib(r.bytes_copied)}), "
                f"{r.blobs_mounted} mounted, {r.blobs_skipped} already there"
                if r.status == "copied"
                else "already up to date"
            )
            print(f"{r.status:9} {r.source} -> {r.destination} {r.digest}  {detail}")
        else:
            print(f"failed    {r.source} -> {r.destination}: {r.error}", file=sys.stderr)
    failed = sum(not r.ok for r in results)
    if failed and len(results) > 1:
        print(f"imgctl: error: {failed} of {len(results)} copies failed", file=sys.stderr)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def digest(connection: Connection, reference: str) -> None:
    """``imgctl digest``."""
    ref = parse_ref(reference)

    async def work(client: RegistryClient) -> str:
        desc = await client.head_manifest(ref)
        if desc is None:
            from imgctl.errors import NotFoundError

            raise NotFoundError(f"manifest {ref} not found", status=404)
        return str(desc.digest)

    print(run(connection, work))


def manifest(connection: Connection, reference: str) -> None:
    """``imgctl manifest``."""
    ref = parse_ref(reference)

    async def work(client: RegistryClient) -> bytes:
        return (await client.get_manifest(ref)).data

    data = run(connection, work)
    sys.stdout.buffer.write(data)
    if sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def list_tags(
    connection: Connection, repository: str, *, full_ref: bool, page_size: int, json_output: bool
) -> None:
    """``imgctl ls``."""
    ref = parse_ref(repository, repository=True)

    async def work(client: RegistryClient) -> list[str]:
        return await client.list_tags(ref, page_size=page_size)

    tags = run(connection, work)
    if json_output:
        print(json.dumps({"name": ref.name, "tags": tags}, indent=2))
        return
    for tag in tags:
        print(f"{ref.name}:{tag}" if full_ref else tag)


def explain(connection: Connection, reference: str, *, json_output: bool) -> None:
    """``imgctl auth explain``: which source answers for REFERENCE, and why."""
    import asyncio

    from imgctl._internal.hosts import is_loopback
    from imgctl.authn import MultiKeychain

    ref = parse_ref(reference)
    try:
        keychain, options = connection.settings()
        assert isinstance(keychain, MultiKeychain)
        answers = asyncio.run(keychain.explain_all(ref.registry, ref.repository))
    except ImgctlError as exc:
        fail(str(exc))
    tls = options.tls.for_registry(ref.registry)
    plain = ref.registry in options.insecure_registries or is_loopback(ref.registry)
    winner = answers[-1] if answers and answers[-1].found else None
    asked = {a.source for a in answers}
    skipped = [getattr(k, "name", type(k).__name__) for k in keychain.keychains]
    skipped = [name for name in skipped if name not in asked]
    if json_output:
        document = {
            "registry": ref.registry,
            "repository": ref.repository,
            "source": winner.source if winner else None,
            "credential": winner.credential.kind if winner else "anonymous",
            "username": winner.credential.username if winner else None,
            "detail": winner.detail if winner else "no source has credentials",
            "consulted": [
                {"source": a.source, "found": a.found, "detail": a.detail} for a in answers
            ],
            "not_consulted": skipped,
            "tls": {
                "verify": tls.verify,
                "ca_files": list(tls.ca_files),
                "client_cert": tls.client_cert,
                "plain_http_allowed": plain,
            },
        }
        print(json.dumps(document, indent=2))
        return
    print(f"{ref.registry}/{ref.repository}")
    for answer in answers:
        mark = "->" if answer is winner else "  "
        print(f"  {mark} {answer.source:14} {answer.detail}")
    for name in skipped:
        print(f"     {name:14} not consulted (an earlier source answered)")
    if winner:
        print(f"credentials: {winner.credential.describe()} from {winner.source}")
    else:
        print("credentials: none; requests go anonymous")
    http = "plain HTTP allowed" if plain else "HTTPS only"
    print(f"tls: {http}; {tls.describe()}")
