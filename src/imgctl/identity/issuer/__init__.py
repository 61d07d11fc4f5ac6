"""The built-in OIDC issuer: Dex's SSH connector and token exchange, for teams without Dex.

``imgctl idp serve`` runs it; ``imgctl idp rotate-key`` rotates its signing key. The pieces are
usable directly: ``load_issuer_config``, ``KeyStore``, ``IssuerService`` (no HTTP) with its
replay memory (``ProcessReplayMemory``, ``DatabaseReplayMemory``) and ``create_app`` (ASGI).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from imgctl.identity.issuer._config import (
    IssuerConfig,
    SSHUser,
    StaticClient,
    load_issuer_config,
)
from imgctl.identity.issuer._keys import KeyStore, SigningKey
from imgctl.identity.issuer._replay import (
    DatabaseReplayMemory,
    ProcessReplayMemory,
    ReplayMemory,
    open_replay_memory,
)
from imgctl.identity.issuer._service import (
    MAX_SSH_JWT_LIFETIME,
    IssuerService,
    dex_subject,
)

if TYPE_CHECKING:
    import socket

    from imgctl._internal.startup import StartupLog

__all__ = [
    "MAX_SSH_JWT_LIFETIME",
    "DatabaseReplayMemory",
    "IssuerConfig",
    "IssuerService",
    "KeyStore",
    "ProcessReplayMemory",
    "ReplayMemory",
    "SSHUser",
    "SigningKey",
    "StaticClient",
    "dex_subject",
    "load_issuer_config",
    "open_replay_memory",
    "serve",
]

log = logging.getLogger("imgctl.issuer")


def serve(
    config: IssuerConfig,
    address: str,
    *,
    issuer: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run the issuer on ``address`` (host:port) until interrupted.

    Used SSH-JWT ids are kept where ``config.database_url`` says, else in the database of
    ``IMGCTL_DATABASE_URL`` in ``environ``, else in a SQLite file in the keys directory; the
    start-up log says which.
    """
    import asyncio
    import os

    from imgctl._internal.listen import listen, split_address
    from imgctl.errors import UsageError

    split_address("--address", address, "127.0.0.1:5556")
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key must be given together")
    if tls_cert is not None and tls_key is not None:
        _check_tls(tls_cert, tls_key)
    scheme = "https" if tls_cert else "http"
    issuer_url = issuer or config.issuer or f"{scheme}://{address}"
    sock = listen("--address", address, "127.0.0.1:5556")
    try:
        keys = KeyStore(config.keys_dir, token_ttl=config.token_ttl, clock_skew=config.clock_skew)
        keys.load(create=True)
        startup = _configure_logging()
        asyncio.run(
            _serve(
                config,
                keys,
                issuer_url,
                sock,
                os.environ if environ is None else environ,
                tls_cert=tls_cert,
                tls_key=tls_key,
                startup=startup,
            )
        )
    finally:
        sock.close()


async def _serve(
    config: IssuerConfig,
    keys: KeyStore,
    issuer_url: str,
    sock: socket.socket,
    environ: Mapping[str, str],
    *,
    tls_cert: str | None,
    tls_key: str | None,
    startup: StartupLog,
) -> None:
    import uvicorn

    from imgctl._internal.listen import bound_address
    from imgctl._internal.uvicorn_signals import serve_until_signalled
    from imgctl.identity.issuer._app import MAX_HEAD_BYTES, create_app

    replay = await open_replay_memory(config, environ)
    try:
        log.info("jti replay memory: %s", replay.description)
        app = create_app(IssuerService(config, keys, issuer_url, replay=replay))
        server_config = uvicorn.Config(
            app,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            # uvicorn's "Started server process" and "Application startup" lines would come
            # before and around imgctl's one listening line; its warnings and errors stay.
            log_level="warning",
            server_header=False,
            # imgctl.issuer.access logs each request, without its query string.
            access_log=False,
            # h11 bounds the request line and headers; httptools reads a 20 MiB header line.
            http="h11",
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        server = uvicorn.Server(server_config)
        startup.listening([("https" if tls_cert else "http", bound_address(sock))])
        interrupted = await serve_until_signalled(server, [sock])
    finally:
        await replay.aclose()
    if interrupted:
        raise KeyboardInterrupt  # Ctrl-C: the command exits 130 (SIGTERM, a pod's stop: 0)


def _configure_logging() -> StartupLog:
    """Issuer lines on stderr, shaped like uvicorn's, which shares the stream.

    Its INFO lines are held back until the listening line (imgctl._internal.startup).
    """
    import sys

    from uvicorn.logging import DefaultFormatter

    from imgctl._internal.startup import StartupLog

    startup = StartupLog("idp serve")
    issuer_log = logging.getLogger("imgctl.issuer")
    if issuer_log.handlers:
        for handler in issuer_log.handlers:
            startup.hold(handler)
        return startup
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False))
    issuer_log.addHandler(handler)
    issuer_log.setLevel(logging.INFO)
    issuer_log.propagate = False
    startup.hold(handler)
    return startup


def _check_tls(cert: str, key: str) -> None:
    """Load the certificate and key once, so that a bad pair stops the start with a clear error."""
    import ssl

    from imgctl.errors import UsageError

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"cannot use --tls-cert {cert} with --tls-key {key}: {exc.strerror or exc}",
            hint="give a PEM certificate (chain) and its unencrypted PEM private key",
        ) from None
