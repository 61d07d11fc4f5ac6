"""Who you are: ``imgctl token``, ``imgctl auth explain|login|logout``, ``imgctl idp ...``.

``auth explain`` says which source answers for a registry; ``token`` and ``auth login`` trade
an SSH-signed JWT for an OIDC token (``Login`` in ``imgctl.cli._flags``); ``idp`` runs the
built-in issuer. Every failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imgctl.cli._exit import fail, stop
from imgctl.cli._flags import (
    ClientCertOptForServer,
    ClientKeyOptForServer,
    Connection,
    Login,
    OutputOpt,
    ServerCaOpt,
    ServerOpt,
    TlsOpt,
    login_command,
    parse_ref,
    registry_command,
)
from imgctl.cli._output import Output, print_document
from imgctl.errors import ImgctlError

__all__ = ["app", "auth_app", "idp_app"]

app = typer.Typer()

auth_app = typer.Typer(
    name="auth",
    help="Who you are: registry credentials (explain) and your OIDC login.",
    no_args_is_help=True,
)

idp_app = typer.Typer(
    name="idp",
    help="The built-in OIDC issuer (Dex's SSH connector and token exchange).",
    no_args_is_help=True,
)


@auth_app.command("explain")
@registry_command
def auth_explain(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="Image or repository reference.")],
    output: OutputOpt = Output.text,
) -> None:
    """Say which source supplies credentials for REFERENCE, and why (never the secret)."""
    import asyncio

    from imgctl._internal.hosts import is_loopback
    from imgctl.authn import MultiKeychain

    ref = parse_ref(reference)
    try:
        keychain, options = connection.settings()
        assert isinstance(keychain, MultiKeychain)
        answers = asyncio.run(keychain.explain_all(ref.registry, ref.repository))
    except ImgctlError as exc:
        stop(exc)  # a config or PEM file that cannot be used is a usage error: 2
    tls = options.tls.for_registry(ref.registry)
    plain = ref.registry in options.insecure_registries or is_loopback(ref.registry)
    winner = answers[-1] if answers and answers[-1].found else None
    asked = {a.source for a in answers}
    skipped = [getattr(k, "name", type(k).__name__) for k in keychain.keychains]
    skipped = [name for name in skipped if name not in asked]
    if output is not Output.text:
        print_document(
            {
                "registry": ref.registry,
                "repository": ref.repository,
                "source": winner.source if winner else None,
                "credential": winner.credential.kind if winner else "anonymous",
                "username": winner.credential.username if winner else None,
                "detail": winner.detail if winner else "no source has credentials",
                "consulted": [
                    {"source": a.source, "found": a.found, "detail": a.detail} for a in answers
                ],
                "notConsulted": skipped,
                "tls": {
                    "verify": tls.verify,
                    "caFiles": list(tls.ca_files),
                    "clientCert": tls.client_cert,
                    "plainHttpAllowed": plain,
                },
            },
            output,
        )
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


@app.command("token")
@login_command
def token(
    login: Login,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
) -> None:
    """Print only an OIDC token for the caller (for scripts), from the cache or the issuer.

    Without --dex-url (DEX_URL), the issuer and the audience are the ones the imgctl server
    names, when one is configured (--server, IMGCTL_SERVER), as for `imgctl promote`.
    """
    from imgctl.cli._promote import server_login_settings

    settings, _ = server_login_settings(login, server, tls, ca_cert, client_cert, client_key)
    print(login.token(settings).token)


@auth_app.command("login")
@login_command
def auth_login(
    login: Login,
    show_token: Annotated[
        bool, typer.Option("--show-token", help="Print the token too (for debugging).")
    ] = False,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
) -> None:
    """Sign in with your SSH key and say who the issuer thinks you are.

    Without --dex-url (DEX_URL), the issuer and the audience are the ones the imgctl server
    names, when one is configured (--server, IMGCTL_SERVER), as for `imgctl promote`. The
    token is cached (0600) until a minute before it expires; `imgctl auth logout` forgets it.
    """
    import time

    from imgctl.cli._exit import warn
    from imgctl.cli._promote import server_login_settings
    from imgctl.identity._hints import AUDIENCE_SOURCES
    from imgctl.identity.exchange import unverified_claims

    settings, info = server_login_settings(login, server, tls, ca_cert, client_cert, client_key)
    issued = login.token(settings)
    claims = unverified_claims(issued.token)
    who = claims.get("name") or settings.username
    email = f" <{claims['email']}>" if claims.get("email") else ""
    groups = claims.get("groups")
    group_text = ", ".join(map(str, groups)) if isinstance(groups, list) and groups else "none"
    until = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(issued.expires_at))
    how = "cached token" if issued.source == "cache" else f"signed with {issued.source}"
    named = info is not None and settings.issuer == (info.issuer_url or "").rstrip("/")
    learned = " (named by the imgctl server)" if named else ""
    print(f"logged in as {who}{email} at {settings.dex_url}{learned}")
    print(f"groups: {group_text}")
    print(f"token for audience {claims.get('aud')!s}, valid until {until} ({how})")
    if info is not None and info.audience and info.audience != settings.target_audience:
        warn(
            f"the imgctl server expects audience {info.audience!r}, not "
            f"{settings.target_audience!r}: it will refuse this token; remove the audience "
            f"setting ({AUDIENCE_SOURCES}) or pass --audience {info.audience}"
        )
    if show_token:
        print(issued.token)


@auth_app.command("logout")
def auth_logout(
    dex_url: Annotated[
        str | None,
        typer.Option("--dex-url", envvar="DEX_URL", help="Forget only the tokens of this issuer."),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(
            "--audience", envvar="IMGCTL_AUDIENCE", help="Forget only tokens for this audience."
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", help="Forget only this user's tokens."),
    ] = None,
    all_tokens: Annotated[
        bool,
        typer.Option("--all", help="Forget every cached token, whatever its issuer."),
    ] = False,
) -> None:
    """Forget cached OIDC tokens: the next command signs in again with your SSH key.

    Tokens are kept in ~/.cache/imgctl/tokens.json ($XDG_CACHE_HOME/imgctl), 0600. Give
    --dex-url (DEX_URL) and/or --audience (IMGCTL_AUDIENCE), or `dex_url`/`audience` in
    ~/.config/imgctl/config.toml, to pick which, or --all. Says what it removed; nothing cached
    is not an error (exit 0). Tokens already handed out stay valid at the server until they
    expire: logout forgets them here, it cannot revoke them.
    """
    import os

    from imgctl.cli._exit import EXIT_INVALID
    from imgctl.cli._settings import resolve
    from imgctl.identity.exchange import TokenCache, default_cache_dir

    cache = TokenCache(default_cache_dir(os.environ, Path.home()))
    if all_tokens:
        if dex_url or audience or username:
            fail(
                "--all forgets every token: give it alone, or pick with --dex-url/--audience",
                EXIT_INVALID,
            )
        issuer = chosen_audience = None
    else:
        try:
            issuer = resolve(dex_url, "dex_url")
            chosen_audience = resolve(audience, "audience")
        except ImgctlError as exc:
            fail(str(exc), EXIT_INVALID)  # config.toml that cannot be read: a usage error
        if not issuer and not chosen_audience and not username:
            fail(
                "say which tokens to forget: --dex-url (DEX_URL), --audience, --username, or --all",
                EXIT_INVALID,
            )
        issuer = issuer.rstrip("/") if issuer else None
    try:
        removed = cache.remove(issuer, chosen_audience, username)
    except OSError as exc:
        fail(f"cannot rewrite {cache.path}: {exc.strerror}")
    if not removed:
        which = "" if all_tokens else " for " + _selection(issuer, chosen_audience, username)
        print(f"no cached token{which} (in {cache.path})")
        return
    for entry in removed:
        print(f"removed token of {entry.user} from {entry.issuer} for audience {entry.audience}")


def _selection(issuer: str | None, audience: str | None, user: str | None) -> str:
    parts = [f"issuer {issuer}" if issuer else "", f"audience {audience}" if audience else ""]
    parts.append(f"user {user}" if user else "")
    return ", ".join(p for p in parts if p)


IdpConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="IMGCTL_IDP_CONFIG",
        help="Issuer config (YAML: users with SSH keys, staticClients).",
        dir_okay=False,
    ),
]


@idp_app.command("serve")
def idp_serve(
    config: IdpConfigOpt,
    address: Annotated[
        str, typer.Option("--address", help="HOST:PORT to listen on.")
    ] = "127.0.0.1:5556",
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer", help="Issuer URL (default: the config's, else http(s)://ADDRESS)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate: serve HTTPS.", dir_okay=False),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM key of --tls-cert.", dir_okay=False)
    ] = None,
) -> None:
    """Run the issuer until interrupted."""
    from imgctl.cli._exit import exit_code
    from imgctl.identity.issuer import load_issuer_config, serve

    try:
        loaded = load_issuer_config(config)
        serve(
            loaded,
            address,
            issuer=issuer,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
        )
    except ImgctlError as exc:
        # Like every daemon: a mistake at start (a UsageError: config, flags, port) exits 2.
        fail(str(exc), exit_code(exc))


@idp_app.command("rotate-key")
def idp_rotate_key(config: IdpConfigOpt) -> None:
    """Start signing with a new key; the old one stays published until its tokens expire."""
    from imgctl.identity.issuer import KeyStore, load_issuer_config

    try:
        loaded = load_issuer_config(config)
        keys = KeyStore(loaded.keys_dir, token_ttl=loaded.token_ttl, clock_skew=loaded.clock_skew)
        new = keys.rotate()
    except ImgctlError as exc:
        stop(exc)  # a config file that cannot be used is a usage error: 2
    published = ", ".join(k.kid for k in keys.published())
    print(f"new signing key {new.kid} in {loaded.keys_dir}")
    print(f"published keys: {published}")
