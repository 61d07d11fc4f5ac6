"""The built-in OIDC issuer: Dex's SSH connector and token exchange, for teams without Dex.

``imgctl idp serve`` runs it; ``imgctl idp rotate-key`` rotates its signing key. The pieces are
usable directly: ``load_issuer_config``, ``KeyStore``, ``IssuerService`` (no HTTP) and
``create_app`` (FastAPI).
"""

from __future__ import annotations

from imgctl.identity.issuer._config import (
    IssuerConfig,
    SSHUser,
    StaticClient,
    load_issuer_config,
)
from imgctl.identity.issuer._keys import KeyStore, SigningKey
from imgctl.identity.issuer._service import IssuerService, OAuthError, dex_subject

__all__ = [
    "IssuerConfig",
    "IssuerService",
    "KeyStore",
    "OAuthError",
    "SSHUser",
    "SigningKey",
    "StaticClient",
    "dex_subject",
    "load_issuer_config",
    "serve",
]


def serve(
    config: IssuerConfig,
    address: str,
    *,
    issuer: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Run the issuer on ``address`` (host:port) until interrupted."""
    import uvicorn

    from imgctl._internal.listen import listen, split_address
    from imgctl.errors import UsageError
    from imgctl.identity.issuer._app import create_app

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
        app = create_app(IssuerService(config, keys, issuer_url))
        server_config = uvicorn.Config(
            app, ssl_certfile=tls_cert, ssl_keyfile=tls_key, log_level="info", server_header=False
        )
        uvicorn.Server(server_config).run(sockets=[sock])
    finally:
        sock.close()


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
