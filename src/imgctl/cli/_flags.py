"""The flags several commands share, and what they turn into.

Registry access (``Connection``: keychain, TLS, retries -> a registry client), login
(``Login``: SSH key -> OIDC token), ``-o``, rate limits. A command takes a whole set with one
decorator (``@registry_command``, ``@login_command``) and receives it as one value, so every
command lists the same flags, in the same order, under the same --help panel.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from imgctl.cli._exit import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_UNAUTHENTICATED,
    exit_code,
    fail,
    interrupted,
    stop,
    warn,
)
from imgctl.cli._output import Output
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.authn import Credential, Keychain
    from imgctl.identity.exchange import IssuedToken, LoginSettings
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, Limiter, RegistryClient

_T = TypeVar("_T")


def per_second(value: float | None) -> float | None:
    """A request rate: a finite number above 0 (click itself lets 0, -1, nan and inf through)."""
    if value is not None and not 0 < value < float("inf"):
        raise typer.BadParameter(
            f"{value:g} is not a rate: give requests per second above 0, e.g. 50"
        )
    return value


def seconds(value: float) -> float:
    """A duration in seconds: finite and not negative."""
    if not 0 <= value < float("inf"):
        raise typer.BadParameter(f"{value:g} is not a duration: give seconds, 0 or more")
    return value


# Shared registry flags are listed together in --help, after the command's own.
_PANEL = "Registry access"

InsecureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--registry-insecure",
        envvar="IMGCTL_INSECURE_REGISTRIES",
        help="Registry host[:port] that may use plain HTTP or unverified TLS (repeatable, or "
        "comma-separated). Loopback registries may always use plain HTTP.",
        show_default=False,
        rich_help_panel=_PANEL,
    ),
]
CaCertOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--registry-ca-cert-path",
        envvar="IMGCTL_TLS_CA_CERT_PATH",
        help="PEM file of extra CA certificates to trust for registries (repeatable).",
        exists=True,
        dir_okay=False,
        show_default=False,
        rich_help_panel=_PANEL,
    ),
]
ClientCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-client-cert",
        envvar="IMGCTL_TLS_CLIENT_CERT",
        help="PEM client certificate for registries that require mutual TLS.",
        exists=True,
        dir_okay=False,
        rich_help_panel=_PANEL,
    ),
]
ClientKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-client-key",
        envvar="IMGCTL_TLS_CLIENT_KEY",
        help="PEM key of --registry-client-cert (if the certificate file does not hold it).",
        exists=True,
        dir_okay=False,
        rich_help_panel=_PANEL,
    ),
]
VerifyOpt = Annotated[
    str | None,
    typer.Option(
        "--registry-verify-certs",
        envvar="IMGCTL_TLS_VERIFY_CERTS",
        metavar="true|false",
        help="Verify registry TLS certificates (default: true). false is unsafe and warns.",
        show_default=False,
        rich_help_panel=_PANEL,
    ),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option(
        "--registry-username",
        envvar="IMGCTL_USERNAME",
        help="Username for registries that no IMGCTL_CREDS_* entry or cloud keychain covers.",
        rich_help_panel=_PANEL,
    ),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--registry-password",
        envvar="IMGCTL_PASSWORD",
        help="Password for --registry-username.",
        rich_help_panel=_PANEL,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--registry-token",
        envvar="IMGCTL_TOKEN",
        help="Bearer token sent to registries as is (instead of a username/password).",
        rich_help_panel=_PANEL,
    ),
]
AnonOpt = Annotated[
    bool,
    typer.Option(
        "--registry-anon",
        envvar="IMGCTL_ANON",
        help="Anonymous access: skip flags and docker config (env entries and cloud "
        "keychains still apply).",
        rich_help_panel=_PANEL,
    ),
]
AnonymousWritesOpt = Annotated[
    bool,
    typer.Option(
        "--allow-anonymous-catalog-writes",
        envvar="IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES",
        help="Without --tokens-file, let ANYONE who can reach the HTTP address PUT and DELETE "
        "catalog entries (imagelist's no-token mode). Without either, writes are refused.",
    ),
]


# What verifies a signature or attestation: keys, or a keyless identity with its trust material
# (cosign verify's flag names; imgctl verify and imgctl attestations share them).
PublicKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        help="Public key: cosign.pub, a PEM public key or a KMS URI (repeatable: any of them).",
        show_default=False,
    ),
]
CertificateIdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-identity",
        help="Keyless: the signing certificate's identity (SAN), exactly.",
    ),
]
CertificateIssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-oidc-issuer",
        help="Keyless: the OIDC issuer in the certificate, exactly.",
    ),
]
CertificateChainOpt = Annotated[
    Path | None,
    typer.Option(
        "--certificate-chain",
        help="Keyless: PEM file of the trusted Fulcio root (and intermediate) certificates.",
        dir_okay=False,
    ),
]
TrustedRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--trusted-root",
        help="Keyless: a sigstore trusted_root.json (its Fulcio certificates and Rekor keys).",
        dir_okay=False,
    ),
]
RekorPublicKeyOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--rekor-public-key",
        help="Keyless: PEM public key of the Rekor log (repeatable).",
        dir_okay=False,
        show_default=False,
    ),
]
PublicPagesOpt = Annotated[
    bool,
    typer.Option(
        "--public-pages",
        envvar="IMGCTL_PUBLIC_PAGES",
        help="Serve the web pages (release matrix, audit, watches) and their /api/ JSON to "
        "ANYONE who can reach the HTTP address, without a token (docs/web.md).",
    ),
]
RequireSignatureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--require-signature",
        metavar="ENV=KEYREF",
        help="Admission in ENV (POST /admission/ENV) also requires a valid cosign signature by "
        "KEYREF (cosign.pub, PEM key, KMS URI) on every promoted image. Repeatable; several "
        "keys for one ENV mean any of them. Default: $IMGCTL_ADMISSION_REQUIRE_SIGNATURE "
        "(comma-separated).",
    ),
]
RequireAttestationOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--require-attestation",
        metavar="ENV=KEYREF",
        help="Admission in ENV also requires a valid promotion attestation (predicate type "
        "https://k8s.io/promo-tools/promotion/v1, as imgctl server --sign-key writes) signed by "
        "KEYREF on every promoted image. Repeatable, like --require-signature. Default: "
        "$IMGCTL_ADMISSION_REQUIRE_ATTESTATION (comma-separated).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (default: $IMGCTL_CONFIG, else ~/.config/imgctl/config.toml).",
        dir_okay=False,
        rich_help_panel=_PANEL,
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries",
        min=0,
        help="Retries on connection errors, 429 and 5xx.",
        rich_help_panel=_PANEL,
    ),
]


def _verbose(value: bool) -> bool:
    if value:
        show_http_trace()
    return value


VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        callback=_verbose,
        help="Trace every registry request and answer on stderr (method, URL, status, time, "
        "headers; credentials and tokens redacted), for bug reports.",
        rich_help_panel=_PANEL,
    ),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
RateOpt = Annotated[
    float | None,
    typer.Option(
        "--rate-limit",
        callback=per_second,
        help="Requests per second across all registries (default: no limit).",
    ),
]
BurstOpt = Annotated[
    int, typer.Option("--burst", min=1, help="Requests allowed at once above the rate.")
]
# What to check when the server's HTTP side (catalog, audit, scan status) does not answer.
CATALOG_UNREACHABLE_HINT = (
    "is the imgctl server (or `imgctl catalog serve`) listening there? Name its HTTP address"
    " with --catalog-url URL (IMGCTL_CATALOG_URL)"
)
# The server's HTTP side: the catalog API and GET /scan.
CatalogUrlOpt = Annotated[
    str,
    typer.Option(
        "--catalog-url",
        envvar="IMGCTL_CATALOG_URL",
        help="Base URL of the catalog API (the server's HTTP side).",
    ),
]

# The flags every command that talks to registries takes, in --help order.
_CONNECTION_FLAGS: tuple[tuple[str, Any, Any], ...] = (
    ("registry_username", UsernameOpt, None),
    ("registry_password", PasswordOpt, None),
    ("registry_token", TokenOpt, None),
    ("registry_anon", AnonOpt, False),
    ("registry_ca_cert_path", CaCertOpt, None),
    ("registry_client_cert", ClientCertOpt, None),
    ("registry_client_key", ClientKeyOpt, None),
    ("registry_insecure", InsecureOpt, None),
    ("registry_verify_certs", VerifyOpt, None),
    ("config", ConfigOpt, None),
    ("retries", RetriesOpt, 5),
    ("verbose", VerboseOpt, False),
)

_F = TypeVar("_F", bound=Callable[..., None])


def _with_shared_flags(
    flags: tuple[tuple[str, Any, Any], ...], param: str, build: Callable[[dict[str, Any]], Any]
) -> Callable[[_F], _F]:
    """Add ``flags`` to a Typer command, which receives ``build(values)`` as ``param``."""

    def decorate(func: _F) -> _F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != param]
        shared = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, kind, default in flags
        ]

        def command(**kwargs: Any) -> None:
            values = {name: kwargs.pop(name) for name, _, _ in flags}
            func(**{param: build(values)}, **kwargs)

        parameters = [*own, *shared]
        command.__name__ = func.__name__
        command.__doc__ = func.__doc__
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return cast(_F, command)

    return decorate


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
    # (registry, repository, credential, flag): copy's --src-creds/--dest-creds, before the
    # keychain for those repositories only (authn.SideKeychain).
    sides: tuple[tuple[str, str, Credential, str], ...] = ()

    def settings(self) -> tuple[Keychain, ClientOptions]:
        """The keychain and client options: flags and env over the config file."""
        import os

        from imgctl.authn import default_keychain, flag_credential
        from imgctl.remote import ClientOptions
        from imgctl.remote.config import (
            config_file,
            insecure_hosts,
            load_registry_config,
            resolve_tls,
        )

        home = Path.home()
        path, named = config_file(self.config, os.environ, home)
        config = load_registry_config(path, required=named)
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
        keychain: Keychain = default_keychain(
            os.environ,
            home,
            flags=flag_credential(self.username, self.password, self.token),
            anonymous=self.anonymous,
        )
        if self.sides:
            from imgctl.authn import SideKeychain

            keychain = SideKeychain(self.sides, keychain)
        show_retries()
        options = ClientOptions(
            insecure_registries=insecure_hosts(config, self.insecure_registries),
            tls=tls,
            rate_limit=self.rate_limit,
            burst=self.burst,
            retries=self.retries,
        )
        return keychain, options

    def client(self, limiter: Limiter | None = None) -> RegistryClient:
        """Build the registry client these flags describe (``limiter``: instead of the rate)."""
        from imgctl.remote import RegistryClient

        keychain, options = self.settings()
        return RegistryClient(keychain, options, limiter=limiter)

    def run(
        self,
        work: Callable[[RegistryClient], Awaitable[_T]],
        *,
        limiter: Limiter | None = None,
        exit_codes: bool = False,
    ) -> _T:
        """Run ``work`` with a client; an error is one line on stderr.

        ``limiter`` (imgctl cip's request budget) replaces the client's own rate limiter.

        Registry commands exit 1 when the registry or the copy fails, whatever the reason
        (README "Exit codes": like crane and skopeo), and 2 for a usage error (a bad reference,
        flags that do not go together); ``exit_codes`` uses ``exit_code``'s whole table (sign,
        verify, attestations: 2 for a bad key, 7 for nothing verified).
        """
        import asyncio

        async def main() -> _T:
            async with self.client(limiter) as client:
                return await work(client)

        try:
            return asyncio.run(main())
        except ImgctlError as exc:
            if exit_codes:
                stop(exc)
            fail(str(exc), EXIT_INVALID if exit_code(exc) == EXIT_INVALID else EXIT_FAILED)
        except KeyboardInterrupt:
            interrupted()


async def pin_digest(client: RegistryClient, ref: Reference) -> Reference:
    """``ref`` with its digest: a tag is resolved (HEAD), a digest is checked to exist."""
    from imgctl.errors import DigestMismatchError

    descriptor = await client.require_manifest(ref)
    if ref.digest is not None and descriptor.digest != ref.digest:
        raise DigestMismatchError(f"{ref}: the registry answered with {descriptor.digest}")
    return ref.with_digest(descriptor.digest)


def parse_bool(flag: str, value: str | None) -> bool | None:
    """A true/false flag value (None when not given); anything else fails with one line."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    fail(f"{flag} takes true or false, not {value!r}", EXIT_INVALID)


def parse_ref(value: str, *, repository: bool = False) -> Reference:
    """Parse a reference from the command line, failing with one clear line."""
    from imgctl.oci import Reference

    try:
        return Reference.parse_repository(value) if repository else Reference.parse(value)
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)


def _connection(flags: dict[str, Any]) -> Connection:
    return Connection(
        insecure_registries=flags["registry_insecure"] or [],
        ca_cert_paths=flags["registry_ca_cert_path"] or [],
        client_cert=flags["registry_client_cert"],
        client_key=flags["registry_client_key"],
        verify_certs=parse_bool("--registry-verify-certs", flags["registry_verify_certs"]),
        username=flags["registry_username"],
        password=flags["registry_password"],
        token=flags["registry_token"],
        anonymous=flags["registry_anon"],
        config=flags["config"],
        retries=flags["retries"],
    )


# Every command that talks to registries takes the registry flags, as ``connection``.
registry_command = _with_shared_flags(_CONNECTION_FLAGS, "connection", _connection)

_LOGIN_PANEL = "Login (SSH key -> OIDC token)"
_LOGIN_FLAGS: tuple[tuple[str, Any, Any], ...] = (
    (
        "dex_url",
        Annotated[
            str | None,
            typer.Option(
                "--dex-url",
                envvar="DEX_URL",
                help="Issuer URL: Dex, or `imgctl idp serve`.",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "client_id",
        Annotated[
            str | None,
            typer.Option(
                "--client-id",
                envvar="IMGCTL_CLIENT_ID",
                help="OAuth2 client id at the issuer (default: imgctl).",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "client_secret",
        Annotated[
            str | None,
            typer.Option(
                "--client-secret",
                envvar="IMGCTL_CLIENT_SECRET",
                help="OAuth2 client secret.",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "pubkey_file",
        Annotated[
            Path | None,
            typer.Option(
                "--pubkey-file",
                "-f",
                help="SSH key to use (its .pub or the private key); default: ssh-agent's keys, "
                "then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.",
                dir_okay=False,
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "username",
        Annotated[
            str | None,
            typer.Option(
                "--username",
                "-u",
                help="User name at the issuer (default: $KUBECTL_SSH_USER, else $USER).",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "audience",
        Annotated[
            str | None,
            typer.Option(
                "--audience",
                envvar="IMGCTL_AUDIENCE",
                help="Audience of the token: the imgctl server's OIDC_AUDIENCE (default: the "
                "client id).",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        None,
    ),
    (
        "no_cache",
        Annotated[
            bool,
            typer.Option(
                "--no-cache",
                help="Get a fresh token instead of a cached one.",
                rich_help_panel=_LOGIN_PANEL,
            ),
        ],
        False,
    ),
)


@dataclass(frozen=True)
class Login:
    """The login flags every command that needs a token shares."""

    dex_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    pubkey_file: Path | None = None
    username: str | None = None
    audience: str | None = None
    no_cache: bool = False

    def settings(self, issuer: str | None = None, audience: str | None = None) -> LoginSettings:
        """The exchange settings these flags describe.

        ``issuer`` and ``audience`` are what the imgctl server names (ServerInfo): used when
        the flags, the environment and the config file give none. A missing or unreadable
        setting is a usage error (exit 2), in every command that signs in.
        """
        import os

        from imgctl.cli._settings import resolve
        from imgctl.identity.exchange import LoginSettings, default_username

        try:
            dex_url = resolve(self.dex_url, "dex_url") or issuer
            client_id = resolve(self.client_id, "client_id", "imgctl")
            client_secret = resolve(self.client_secret, "client_secret")
            audience = resolve(self.audience, "audience") or audience
        except ImgctlError as exc:
            fail(str(exc), EXIT_INVALID)
        if not dex_url:
            fail(
                "no issuer: pass --dex-url or set DEX_URL (Dex, or `imgctl idp serve`), or "
                "--server (IMGCTL_SERVER) to ask the imgctl server for it",
                EXIT_INVALID,
            )
        return LoginSettings(
            dex_url=dex_url,
            username=self.username or default_username(os.environ),
            client_id=client_id,
            client_secret=client_secret,
            audience=audience,
            pubkey_file=self.pubkey_file,
        )

    def token(self, settings: LoginSettings | None = None) -> IssuedToken:
        """Get a token (cached unless --no-cache); failures end the command with one line."""
        import asyncio
        import os

        from imgctl.identity.exchange import TokenCache, default_cache_dir, obtain_token

        settings = settings or self.settings()
        home = Path.home()
        cache = TokenCache(default_cache_dir(os.environ, home))
        if self.no_cache:
            cache.clear()
        try:
            return asyncio.run(
                obtain_token(
                    settings,
                    environ=os.environ,
                    home=home,
                    passphrase=ask_passphrase,
                    cache=cache,
                )
            )
        except ImgctlError as exc:
            # As promote (docs/server.md): signing in that fails exits 3, whatever stopped it.
            fail(str(exc), EXIT_UNAUTHENTICATED)
        except KeyboardInterrupt:
            interrupted()


class CachedTokenRefused(Exception):
    """A server refused a token that came from the cache; the message is what it said.

    Raised where the refusal is seen, caught where the call can be made again: the command
    then calls ``drop_cached_token`` and signs in once more (promote, auth-check, audit ls).
    """


def drop_cached_token(settings: LoginSettings, details: str) -> None:
    """Forget the cached token a server refused, saying so; the next sign-in uses the SSH key.

    A cached token can go bad before it expires (the issuer's keys rotated, a clock): every
    command that signs in drops it and signs in once more, and explains a second refusal.
    """
    import os
    import sys

    from imgctl.identity._hints import server_said
    from imgctl.identity.exchange import TokenCache, default_cache_dir

    TokenCache(default_cache_dir(os.environ, Path.home())).remove(
        settings.issuer, settings.target_audience, settings.username
    )
    print(
        f"imgctl: the server refused the cached token ({server_said(details)}); dropped it, "
        "signing in again with your SSH key",
        file=sys.stderr,
    )


def ask_passphrase(prompt: str) -> str | None:
    """Ask on the terminal; without one there is nobody to ask."""
    import getpass

    try:
        with open("/dev/tty"):  # only probing that a terminal exists
            pass
    except OSError:
        return None
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def _login(flags: dict[str, Any]) -> Login:
    return Login(**flags)


# Every command that needs an OIDC token takes the login flags, as ``login``.
login_command = _with_shared_flags(_LOGIN_FLAGS, "login", _login)


def show_http_trace() -> None:
    """Print the registry client's HTTP trace on stderr (``-v``; ``imgctl.remote._trace``).

    Stderr only, so what a command prints on stdout is the same with or without ``-v``.
    """
    import logging
    import sys

    logger = logging.getLogger("imgctl.remote.http")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("imgctl: http: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


# How a command reaches the imgctl server (promote, auth-check, audit, version, and token /
# auth login when they ask the server for its issuer): shared, so that --help of a command
# that takes them imports no other command's module.
_SERVER_PANEL = "imgctl server"
# What to check when the server's gRPC side does not answer (promote, auth-check, version).
SERVER_UNREACHABLE_HINT = (
    "is `imgctl server` running there? Name it with --server HOST:PORT (IMGCTL_SERVER);"
    " a server with TLS needs --tls"
)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="IMGCTL_SERVER",
        help="gRPC address of the imgctl server (default: localhost:9999).",
        rich_help_panel=_SERVER_PANEL,
    ),
]
TlsOpt = Annotated[
    bool | None,
    typer.Option(
        "--tls/--no-tls",
        envvar="IMGCTL_TLS",
        help="Talk TLS to the server (default: plaintext, as the server's default).",
        show_default=False,
        rich_help_panel=_SERVER_PANEL,
    ),
]
ServerCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        help="PEM CA bundle for the server's certificate (with --tls).",
        dir_okay=False,
        exists=True,
        rich_help_panel=_SERVER_PANEL,
    ),
]
ClientCertOptForServer = Annotated[
    Path | None,
    typer.Option(
        "--client-cert",
        envvar="IMGCTL_SERVER_CLIENT_CERT",
        help="PEM client certificate, for a server started with --client-ca (with --tls).",
        dir_okay=False,
        exists=True,
        rich_help_panel=_SERVER_PANEL,
    ),
]
ClientKeyOptForServer = Annotated[
    Path | None,
    typer.Option(
        "--client-key",
        envvar="IMGCTL_SERVER_CLIENT_KEY",
        help="PEM key of --client-cert.",
        dir_okay=False,
        exists=True,
        rich_help_panel=_SERVER_PANEL,
    ),
]


def show_retries() -> None:
    """Print the registry client's retries on stderr as warnings, while its backoff runs.

    The retry policy logs each retry (``imgctl.remote.retry``); a command would otherwise sit
    silent for seconds. Stderr only: ``-o json`` output on stdout stays one document.
    """
    import logging
    import sys

    logger = logging.getLogger("imgctl.remote.retry")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("imgctl: warning: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
