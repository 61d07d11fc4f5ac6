"""Client commands of the server: ``imgctl promote``, ``imgctl auth-check``, ``imgctl server``.

Settings come from flags, then environment variables (both through Typer), then the user's
``~/.config/imgctl/config.toml`` ``[client]`` table, then defaults baked into the wheel at build
time (``IMGCTL_BUILD_DEFAULT_*``, see ``imgctl._defaults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from imgctl.cli._identity import Login, _ask_passphrase
from imgctl.cli._registry import (
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHENTICATED,
    EXIT_UNAVAILABLE,
    fail,
)
from imgctl.cli._settings import resolve, user_config
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    import grpc

_EXIT_FOR_STATUS = {
    "INVALID_ARGUMENT": EXIT_INVALID,
    "UNAUTHENTICATED": EXIT_UNAUTHENTICATED,
    "PERMISSION_DENIED": EXIT_DENIED,
    "NOT_FOUND": EXIT_NOT_FOUND,
    "UNAVAILABLE": EXIT_UNAVAILABLE,
    "DEADLINE_EXCEEDED": EXIT_UNAVAILABLE,
}


@dataclass(frozen=True)
class ClientFlags:
    """Flags of the commands that talk to an imgctl server."""

    server: str | None = None
    tls: bool | None = None
    ca_cert: Path | None = None
    show_token: bool = False
    json_output: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None


def _channel(flags: ClientFlags) -> tuple[grpc.aio.Channel, str]:
    import grpc

    server = resolve(flags.server, "server", "localhost:9999")
    tls = resolve(flags.tls, "tls", False)
    if isinstance(tls, str):
        tls = tls.strip().lower() in ("1", "true", "yes", "on")
    cert_path = resolve(flags.client_cert, "client_cert")
    key_path = resolve(flags.client_key, "client_key")
    if (cert_path or key_path) and not tls:
        fail("--client-cert/--client-key need --tls", EXIT_INVALID)
    if bool(cert_path) != bool(key_path):
        fail("--client-cert and --client-key must be given together", EXIT_INVALID)
    if tls:
        ca_path = resolve(flags.ca_cert, "ca_cert")
        root = _read_bytes(Path(ca_path).expanduser()) if ca_path else None
        key = _read_bytes(Path(key_path).expanduser()) if key_path else None
        chain = _read_bytes(Path(cert_path).expanduser()) if cert_path else None
        credentials = grpc.ssl_channel_credentials(root, key, chain)
        return grpc.aio.secure_channel(server, credentials), server
    return grpc.aio.insecure_channel(server), server


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_INVALID)


def _statusfail(error: grpc.aio.AioRpcError, server: str) -> NoReturn:
    name = error.code().name
    details = error.details() or name
    if name == "UNAVAILABLE":
        fail(
            f"cannot reach the imgctl server at {server}: {details}",
            EXIT_UNAVAILABLE,
        )
    fail(f"{details} ({name})", _EXIT_FOR_STATUS.get(name, EXIT_FAILED))


async def _token(login: Login, info: Any) -> str:
    """An OIDC token for the server's audience, from the cache or by logging in."""
    import os

    from imgctl.identity.exchange import (
        LoginSettings,
        TokenCache,
        default_cache_dir,
        default_username,
        obtain_token,
    )

    dex_url = resolve(login.dex_url, "dex_url") or info.issuer_url
    if not dex_url:
        fail("the server names no issuer; pass --dex-url", EXIT_INVALID)
    settings = LoginSettings(
        dex_url=dex_url,
        username=login.username or default_username(os.environ),
        client_id=resolve(login.client_id, "client_id", "imgctl"),
        client_secret=resolve(login.client_secret, "client_secret"),
        audience=resolve(login.audience, "audience") or info.audience,
        pubkey_file=login.pubkey_file,
    )
    cache = TokenCache(default_cache_dir(os.environ, Path.home()))
    if login.no_cache:
        cache.clear()
    try:
        issued = await obtain_token(
            settings, environ=os.environ, home=Path.home(), passphrase=_ask_passphrase, cache=cache
        )
    except ImgctlError as exc:
        fail(str(exc), EXIT_UNAUTHENTICATED)
    return issued.token


@contextlib.asynccontextmanager
async def _session(login: Login, flags: ClientFlags) -> AsyncIterator[tuple[Any, Any, str]]:
    """A stub, the call metadata with a token for this server's audience, and its address."""
    from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

    channel, server = _channel(flags)
    async with channel:
        stub = pb_grpc.ImgCtlStub(channel)  # type: ignore[no-untyped-call]
        info = await _server_info(stub, server)
        token = await _token(login, info)
        if flags.show_token:
            print(token, file=sys.stderr)
        yield stub, (("authorization", f"Bearer {token}"),), server


async def _server_info(stub: Any, server: str) -> Any:
    import grpc

    from imgctl.v1 import imgctl_pb2 as pb

    try:
        return await stub.ServerInfo(pb.ServerInfoRequest(), timeout=30)
    except grpc.aio.AioRpcError as error:
        _statusfail(error, server)


def promote(
    login: Login,
    flags: ClientFlags,
    ref: str | None,
    source: str | None,
    destination: str | None,
) -> None:
    """``imgctl promote``."""
    if not ref:
        fail("promote needs REF (or --ref)", EXIT_INVALID)
    try:
        source = resolve(source, "source", "")
        destination = resolve(destination, "destination", "")
        user_config()  # a bad config file is one clear error before anything else happens
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    if not destination:
        fail(
            "no destination: pass --destination (or set IMGCTL_DEFAULT_DESTINATION)",
            EXIT_INVALID,
        )

    async def run() -> Any:
        import grpc

        from imgctl.v1 import imgctl_pb2 as pb

        async with _session(login, flags) as (stub, metadata, server):
            request = pb.PromoteRequest(ref=ref, source=source, destination=destination)
            result = None
            with _progress(enabled=not flags.json_output and sys.stderr.isatty()) as show:
                try:
                    async for event in stub.PromoteStream(request, metadata=metadata):
                        if event.HasField("progress"):
                            show(event.progress)
                        elif event.HasField("result"):
                            result = event.result
                except grpc.aio.AioRpcError as error:
                    _statusfail(error, server)
            if result is None:
                fail("the server closed the stream without a result", EXIT_FAILED)
            return result

    result = _run(run)
    if flags.json_output:
        from google.protobuf.json_format import MessageToDict

        print(
            json.dumps(MessageToDict(result, always_print_fields_with_no_presence=True), indent=2)
        )
        return
    what = "unchanged" if result.unchanged else "promoted"
    print(f"{what} {ref}: {result.source_environment} -> {result.destination_environment}")
    print(f"  from {result.source_ref}")
    print(f"  to   {result.destination_ref}")
    if result.kind == "image":
        print(
            f"  {result.blobs_copied} blobs copied ({result.bytes_copied / (1 << 20):.1f} MiB), "
            f"{result.blobs_mounted} mounted, {result.blobs_skipped} already there, "
            f"{result.duration_ms} ms"
        )
    else:
        print(
            f"  {result.objects_copied} objects copied, {result.objects_skipped} unchanged, "
            f"{result.duration_ms} ms"
        )
    print(f"  request {result.request_id} by {result.promoted_by}")


def auth_check(login: Login, flags: ClientFlags) -> None:
    """``imgctl auth-check``."""
    try:
        user_config()
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)

    async def run() -> Any:
        import grpc

        from imgctl.v1 import imgctl_pb2 as pb

        async with _session(login, flags) as (stub, metadata, server):
            try:
                return await stub.AuthCheck(pb.AuthCheckRequest(), metadata=metadata)
            except grpc.aio.AioRpcError as error:
                _statusfail(error, server)

    answer = _run(run)
    if flags.json_output:
        from google.protobuf.json_format import MessageToDict

        print(
            json.dumps(MessageToDict(answer, always_print_fields_with_no_presence=True), indent=2)
        )
        return
    print(f"authenticated as {answer.email or answer.subject}")
    print(f"groups: {', '.join(answer.groups) or 'none'}")
    print(f"may promote to: {', '.join(answer.destinations) or 'nothing'}")


def _run(work: Any) -> Any:
    try:
        return asyncio.run(work())
    except ImgctlError as exc:
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        print("imgctl: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


class _progress:  # a context manager named like the function it replaces
    """A Rich progress bar fed with PromoteProgress events, on a terminal only."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda event: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

        self._bar = Progress(
            "promoting", BarColumn(), DownloadColumn(), TimeElapsedColumn(), transient=True
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("promote", total=None)

        def show(event: Any) -> None:
            self._bar.update(self._task, completed=event.bytes_copied)

        return show

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def server(
    bind_address: str,
    http_address: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    policy_file: Path | None,
    grace: float,
    tokens_file: Path | None = None,
    watches_file: Path | None = None,
    allow_anonymous_catalog_writes: bool = False,
) -> None:
    """``imgctl server``."""
    from imgctl.server.app import ServerSettings, run_server

    settings = ServerSettings(
        bind_address=bind_address,
        http_address=http_address or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
        policy_file=policy_file,
        grace=grace,
        tokens_file=tokens_file,
        watches_file=watches_file,
        allow_anonymous_catalog_writes=allow_anonymous_catalog_writes,
    )
    try:
        import uvloop  # uvicorn[standard]: the faster event loop for gRPC and HTTP alike

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        pass
    try:
        asyncio.run(run_server(settings))
    except ImgctlError as exc:
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
