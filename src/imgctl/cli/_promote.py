"""The promotion server's clients: ``imgctl promote`` and ``imgctl auth-check`` (gRPC).

Settings come from flags, then environment variables (both through Typer), then the user's
``~/.config/imgctl/config.toml`` ``[client]`` table, then defaults baked into the wheel at build
time (``IMGCTL_BUILD_DEFAULT_*``, see ``imgctl._defaults``). The server's answers become exit
codes through ``imgctl.cli._exit.exit_code`` (README: "Exit codes").
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from imgctl.cli._exit import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_UNAUTHENTICATED,
    EXIT_UNAVAILABLE,
    exit_code,
    fail,
    interrupted,
)
from imgctl.cli._flags import (
    SERVER_UNREACHABLE_HINT,
    CachedTokenRefused,
    ClientCertOptForServer,
    ClientKeyOptForServer,
    Login,
    OutputOpt,
    ServerCaOpt,
    ServerOpt,
    TlsOpt,
    ask_passphrase,
    drop_cached_token,
    login_command,
)
from imgctl.cli._output import Output, print_document, proto_document, transfer_progress
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    import grpc

    from imgctl.identity.exchange import IssuedToken, LoginSettings

__all__ = ["app"]

app = typer.Typer()

ShowTokenOpt = Annotated[
    bool, typer.Option("--show-token", help="Print the OIDC token on stderr (for debugging).")
]


@dataclass(frozen=True)
class ClientFlags:
    """Flags of the commands that talk to an imgctl server."""

    server: str | None = None
    tls: bool | None = None
    ca_cert: Path | None = None
    show_token: bool = False
    machine_output: bool = False  # -o json or yaml: no progress bar
    client_cert: Path | None = None
    client_key: Path | None = None


@app.command()
@login_command
def promote(
    login: Login,
    reference: Annotated[
        str | None, typer.Argument(help="REPO:TAG, REPO@DIGEST or spa:NAME:VERSION.")
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", "-r", help="The same as REFERENCE.", show_default=False)
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            envvar="IMGCTL_DEFAULT_SOURCE",
            help="Source environment (default: the server's IMGCTL_DEFAULT_SOURCE).",
        ),
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option(
            "--destination",
            "-d",
            envvar="IMGCTL_DEFAULT_DESTINATION",
            help="Destination environment.",
        ),
    ] = None,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
    show_token: ShowTokenOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Promote an image (or SPA bundle) from one environment to another, through the server."""
    from imgctl.cli._settings import resolve, user_config

    if reference and ref and reference != ref:
        fail("give the reference once: as REFERENCE or --ref", EXIT_INVALID)
    flags = ClientFlags(
        server, tls, ca_cert, show_token, output is not Output.text, client_cert, client_key
    )
    ref = reference or ref
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
            terminal = not flags.machine_output and sys.stderr.isatty()
            with transfer_progress("promoting", enabled=terminal) as show:
                try:
                    async for event in stub.PromoteStream(request, metadata=metadata):
                        if event.HasField("progress"):
                            show(event.progress.bytes_copied)
                        elif event.HasField("result"):
                            result = event.result
                except grpc.aio.AioRpcError as error:
                    _statusfail(error, server)
            if result is None:
                fail("the server closed the stream without a result", EXIT_FAILED)
            return result

    result = _run(run)
    # A server that signs says whether it could sign and attest; the copy stands either way
    # (docs/server.md).
    unsigned = result.HasField("signed") and not result.signed
    unattested = result.HasField("attested") and not result.attested
    if flags.machine_output:
        print_document(proto_document(result), output)
        if unsigned or unattested:
            raise SystemExit(EXIT_FAILED)
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
    if result.HasField("signed") and result.signed:
        print(f"  signed with key {result.signature_key[:12]}")
    if result.HasField("attested") and result.attested:
        print(f"  attested with key {result.signature_key[:12]} (promotion attestation)")
    failures = []
    if unsigned:
        failures.append(("sign", result.signature_error))
    if unattested:
        failures.append(("attest", result.attestation_error))
    if failures:
        what = " nor ".join(f"{verb} it ({why})" for verb, why in failures)
        verbs = " and ".join(verb for verb, _ in failures)
        fail(
            f"promoted, but the server could not {what}; promote again to {verbs} it",
            EXIT_FAILED,
        )


@app.command("auth-check")
@login_command
def auth_check(
    login: Login,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
    show_token: ShowTokenOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Check your login with the server: who you are, your groups, where you may promote."""
    from imgctl.cli._settings import user_config

    flags = ClientFlags(
        server, tls, ca_cert, show_token, output is not Output.text, client_cert, client_key
    )
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
    if flags.machine_output:
        # expires_at is Unix seconds on the wire; people and scripts read RFC 3339.
        print_document(proto_document(answer, times={"expires_at": "expiresAt"}), output)
        return
    print(f"authenticated as {answer.email or answer.subject}")
    print(f"groups: {', '.join(answer.groups) or 'none'}")
    print(f"may promote to: {', '.join(answer.destinations) or 'nothing'}")


def _channel(flags: ClientFlags) -> tuple[grpc.aio.Channel, str]:
    import grpc

    from imgctl.cli._settings import resolve

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
    """The server's answer as one line; its gRPC status picks the exit code."""
    name = error.code().name
    details = error.details() or name
    if name == "UNAUTHENTICATED" and _SIGNIN.issued is not None:
        if _SIGNIN.issued.source == "cache" and not _SIGNIN.retried:
            raise CachedTokenRefused(details)  # _run drops it, signs in afresh, tries again
        _explain_refusal(details, server)
    if name == "UNAVAILABLE" and not _answered(error):
        fail(
            f"cannot reach the imgctl server at {server}: {details}; {SERVER_UNREACHABLE_HINT}",
            EXIT_UNAVAILABLE,
        )
    # UNAVAILABLE from the server itself: something behind it (a registry, its database, the
    # issuer) is down, and the details name it.
    fail(f"{details} ({name})", exit_code(error))


def _answered(error: grpc.aio.AioRpcError) -> bool:
    """Whether the imgctl server itself sent this status (it sends x-request-id first).

    A channel that cannot connect, or a proxy in front whose backend is down, answers
    UNAVAILABLE without it.
    """
    metadata = error.initial_metadata() or ()
    return any(key == "x-request-id" for key, _ in metadata)


@dataclass
class _SignIn:
    """The command's token and what the server said it expects, for one retry and the why.

    One per process: a command makes one sign-in, and at most one more after the server
    refused a cached token (``_run``); never a loop.
    """

    settings: LoginSettings | None = None
    issued: IssuedToken | None = None
    info: Any = None
    retried: bool = False


_SIGNIN = _SignIn()


def _explain_refusal(details: str, server: str) -> NoReturn:
    """A token the server refused, though fresh: the cause named, and what to do."""
    from imgctl.identity._hints import server_refusal
    from imgctl.identity.exchange import unverified_claims

    assert _SIGNIN.issued is not None
    info = _SIGNIN.info
    message, hint = server_refusal(
        details,
        unverified_claims(_SIGNIN.issued.token),
        server=server,
        expected_issuer=(info.issuer_url or None) if info is not None else None,
        expected_audience=(info.audience or None) if info is not None else None,
    )
    fail(f"{message}; {hint} (UNAUTHENTICATED)", EXIT_UNAUTHENTICATED)


def server_login_settings(
    login: Login,
    server: str | None = None,
    tls: bool | None = None,
    ca_cert: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> tuple[LoginSettings, Any]:
    """The login settings, and the server's ServerInfo when it was asked (else None).

    As ``promote`` does: when an imgctl server is configured (--server, IMGCTL_SERVER,
    ``server`` in config.toml) and the issuer or the audience is not given, they are the ones
    the server names. Given ones win. ``auth login`` and ``token`` share this.
    """
    from imgctl.cli._settings import resolve

    try:
        given = resolve(login.dex_url, "dex_url"), resolve(login.audience, "audience")
        configured = resolve(server, "server")
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    if not configured or all(given):
        return login.settings(), None
    flags = ClientFlags(server, tls, ca_cert, client_cert=client_cert, client_key=client_key)

    async def ask() -> Any:
        from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

        channel, address = _channel(flags)
        async with channel:
            return await _server_info(pb_grpc.ImgCtlStub(channel), address)  # type: ignore[no-untyped-call]

    info = _run(ask)
    return login.settings(info.issuer_url or None, info.audience or None), info


async def _token(login: Login, info: Any) -> str:
    """An OIDC token for the server's audience, from the cache or by logging in."""
    import os

    from imgctl.identity.exchange import TokenCache, default_cache_dir, obtain_token

    settings = login.settings(info.issuer_url or None, info.audience or None)
    cache = TokenCache(default_cache_dir(os.environ, Path.home()))
    if login.no_cache:
        cache.clear()
    try:
        issued = await obtain_token(
            settings, environ=os.environ, home=Path.home(), passphrase=ask_passphrase, cache=cache
        )
    except ImgctlError as exc:
        # docs/server.md: signing in that fails exits 3, whatever stopped it (issuer down too).
        fail(str(exc), EXIT_UNAUTHENTICATED)
    _SIGNIN.settings, _SIGNIN.issued, _SIGNIN.info = settings, issued, info
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


def _run(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    import asyncio

    try:
        try:
            return asyncio.run(work())
        except CachedTokenRefused as refused:
            # The cached token is no good to this server (keys rotated, issuer re-keyed, a
            # clock...): forget it and sign in once more; a second refusal is explained.
            _forget_cached_token(str(refused))
            return asyncio.run(work())
    except ImgctlError as exc:
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        interrupted()


def _forget_cached_token(details: str) -> None:
    settings = _SIGNIN.settings
    assert settings is not None
    drop_cached_token(settings, details)
    _SIGNIN.retried = True
    _SIGNIN.issued = None
