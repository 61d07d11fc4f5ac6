"""Typer application: command definitions only; behaviour lives in the packages."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer

from imgctl import __version__
from imgctl.cli import _identity, _registry

app = typer.Typer(
    name="imgctl",
    help="Promote container images between environments with their digests unchanged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


def _per_second(value: float | None) -> float | None:
    """A request rate: a finite number above 0 (click itself lets 0, -1, nan and inf through)."""
    if value is not None and not 0 < value < float("inf"):
        raise typer.BadParameter(
            f"{value:g} is not a rate: give requests per second above 0, e.g. 50"
        )
    return value


def _seconds(value: float) -> float:
    """A duration in seconds: finite and not negative."""
    if not 0 <= value < float("inf"):
        raise typer.BadParameter(f"{value:g} is not a duration: give seconds, 0 or more")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Promote container images between environments with their digests unchanged."""


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
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="IMGCTL_CONFIG",
        help="Config file (default: ~/.config/imgctl/config.toml).",
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
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
RateOpt = Annotated[
    float | None,
    typer.Option(
        "--rate-limit",
        callback=_per_second,
        help="Requests per second across all registries (default: no limit).",
    ),
]
BurstOpt = Annotated[
    int, typer.Option("--burst", min=1, help="Requests allowed at once above the rate.")
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


def _connection(flags: dict[str, Any]) -> _registry.Connection:
    return _registry.Connection(
        insecure_registries=flags["registry_insecure"] or [],
        ca_cert_paths=flags["registry_ca_cert_path"] or [],
        client_cert=flags["registry_client_cert"],
        client_key=flags["registry_client_key"],
        verify_certs=_registry.parse_bool(
            "--registry-verify-certs", flags["registry_verify_certs"]
        ),
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
                envvar="KUBECTL_SSH_USER",
                help="User name at the issuer (default: $USER).",
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


def _login(flags: dict[str, Any]) -> _identity.Login:
    return _identity.Login(**flags)


# Every command that needs an OIDC token takes the login flags, as ``login``.
login_command = _with_shared_flags(_LOGIN_FLAGS, "login", _login)


@app.command()
@registry_command
def copy(
    connection: _registry.Connection,
    source: Annotated[
        str | None, typer.Argument(help="Source image: REGISTRY/REPO[:TAG|@DIGEST].")
    ] = None,
    destination: Annotated[
        str | None,
        typer.Argument(help="Destination; without a tag it keeps the source's tag."),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            "-f",
            help="File with one 'SRC DST' pair per line ('-' for stdin); # starts a comment.",
            allow_dash=True,
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Images copied at once.")] = 8,
    blob_jobs: Annotated[
        int, typer.Option("--blob-jobs", min=1, help="Blobs transferred at once.")
    ] = 8,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            "--chunk-size",
            min=1,
            help="Upload blobs in PATCH chunks of this many MiB (default: one streamed PUT).",
        ),
    ] = None,
    output: OutputOpt = Output.text,
    rate_limit: RateOpt = None,
    burst: BurstOpt = 5,
) -> None:
    """Copy images between registries, digests unchanged (all platforms of an index)."""
    _registry.copy(
        replace(connection, rate_limit=rate_limit, burst=burst),
        source,
        destination,
        from_file,
        jobs=jobs,
        blob_jobs=blob_jobs,
        chunk_size=chunk_size * 1024 * 1024 if chunk_size else None,
        json_output=output is Output.json,
    )


@app.command()
@registry_command
def digest(
    connection: _registry.Connection,
    reference: Annotated[str, typer.Argument(help="Image reference.")],
) -> None:
    """Print the digest of an image's manifest or index."""
    _registry.digest(connection, reference)


@app.command()
@registry_command
def manifest(
    connection: _registry.Connection,
    reference: Annotated[str, typer.Argument(help="Image reference.")],
) -> None:
    """Print a manifest exactly as the registry stores it."""
    _registry.manifest(connection, reference)


@app.command("ls")
@registry_command
def ls(
    connection: _registry.Connection,
    repository: Annotated[str, typer.Argument(help="Repository: REGISTRY/REPO.")],
    full_ref: Annotated[
        bool, typer.Option("--full-ref", help="Print REGISTRY/REPO:TAG instead of TAG.")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Tags asked for per page.")
    ] = 1000,
    output: OutputOpt = Output.text,
) -> None:
    """List the tags of a repository."""
    _registry.list_tags(
        connection,
        repository,
        full_ref=full_ref,
        page_size=page_size,
        json_output=output is Output.json,
    )


auth_app = typer.Typer(
    name="auth",
    help="Who you are: registry credentials (explain) and your OIDC login.",
    no_args_is_help=True,
)
app.add_typer(auth_app)


@auth_app.command("explain")
@registry_command
def auth_explain(
    connection: _registry.Connection,
    reference: Annotated[str, typer.Argument(help="Image or repository reference.")],
    output: OutputOpt = Output.text,
) -> None:
    """Say which source supplies credentials for REFERENCE, and why (never the secret)."""
    _registry.explain(connection, reference, json_output=output is Output.json)


@app.command("token")
@login_command
def token(login: _identity.Login) -> None:
    """Print only an OIDC token for the caller (for scripts), from the cache or the issuer."""
    _identity.print_token(login)


@auth_app.command("login")
@login_command
def auth_login(
    login: _identity.Login,
    show_token: Annotated[
        bool, typer.Option("--show-token", help="Print the token too (for debugging).")
    ] = False,
) -> None:
    """Sign in with your SSH key and say who the issuer thinks you are."""
    _identity.login(login, show_token=show_token)


idp_app = typer.Typer(
    name="idp",
    help="The built-in OIDC issuer (Dex's SSH connector and token exchange).",
    no_args_is_help=True,
)
app.add_typer(idp_app)

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
    _identity.idp_serve(config, address, issuer, tls_cert, tls_key)


@idp_app.command("rotate-key")
def idp_rotate_key(config: IdpConfigOpt) -> None:
    """Start signing with a new key; the old one stays published until its tokens expire."""
    _identity.idp_rotate_key(config)


_SERVER_PANEL = "imgctl server"
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
ShowTokenOpt = Annotated[
    bool, typer.Option("--show-token", help="Print the OIDC token on stderr (for debugging).")
]


@app.command()
@login_command
def promote(
    login: _identity.Login,
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
    from imgctl.cli import _promote

    if reference and ref and reference != ref:
        _registry.fail("give the reference once: as REFERENCE or --ref")
    _promote.promote(
        login,
        _promote.ClientFlags(
            server, tls, ca_cert, show_token, output is Output.json, client_cert, client_key
        ),
        reference or ref,
        source,
        destination,
    )


@app.command("auth-check")
@login_command
def auth_check(
    login: _identity.Login,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
    show_token: ShowTokenOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Check your login with the server: who you are, your groups, where you may promote."""
    from imgctl.cli import _promote

    _promote.auth_check(
        login,
        _promote.ClientFlags(
            server, tls, ca_cert, show_token, output is Output.json, client_cert, client_key
        ),
    )


@app.command("server")
def server_command(
    bind_address: Annotated[
        str, typer.Option("--bind-address", help="gRPC HOST:PORT to listen on.")
    ] = "0.0.0.0:9999",
    http_address: Annotated[
        str,
        typer.Option(
            "--http-address", help="HTTP HOST:PORT for health and metrics ('' to turn it off)."
        ),
    ] = "0.0.0.0:8080",
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate: serve gRPC over TLS.", dir_okay=False),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM key of --tls-cert.", dir_okay=False)
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(
            "--client-ca", help="Require client certificates signed by this CA.", dir_okay=False
        ),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-file",
            envvar="IMGCTL_POLICY_FILE",
            help="YAML: destinations and the groups allowed to promote there.",
            dir_okay=False,
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", callback=_seconds, help="Seconds running promotions get to finish on stop."
        ),
    ] = 60.0,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            envvar="IMGCTL_TOKENS_FILE",
            help="imagelist tokens YAML: bearer tokens for catalog writes (watched).",
        ),
    ] = None,
    watches: Annotated[
        Path | None,
        typer.Option(
            "--watches",
            envvar="IMGCTL_WATCHES_FILE",
            help="Watches YAML: repositories to scan, tag policies, auto-promotions.",
            dir_okay=False,
        ),
    ] = None,
    allow_anonymous_catalog_writes: AnonymousWritesOpt = False,
) -> None:
    """Run the promotion server (configured by OIDC_* and IMGCTL_* environment variables)."""
    from imgctl.cli import _promote

    _promote.server(
        bind_address,
        http_address,
        tls_cert,
        tls_key,
        client_ca,
        policy_file,
        grace,
        tokens_file,
        watches,
        allow_anonymous_catalog_writes,
    )


class CipOutput(StrEnum):
    """Output formats of imgctl cip."""

    text = "text"
    json = "json"
    yaml = "yaml"
    csv = "csv"


@app.command("cip")
@registry_command
def cip(
    connection: _registry.Connection,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", help="A plain promoter manifest (registries + images).", dir_okay=False
        ),
    ] = None,
    thin_manifest_dir: Annotated[
        Path | None,
        typer.Option(
            "--thin-manifest-dir",
            help="A thin manifest tree: images/<x>/images.yaml and "
            "manifests/<x>/promoter-manifest.yaml.",
            file_okay=False,
        ),
    ] = None,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Promote (default: a dry run that writes nothing).")
    ] = False,
    parse_only: Annotated[
        bool, typer.Option("--parse-only", help="Only parse and validate the manifests.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Thin trees: refuse the tree when an entry fails validation or an images "
            "file has no manifest (default: warn and skip that entry, as kpromo reads it).",
        ),
    ] = False,
    allow_tag_moves: Annotated[
        bool,
        typer.Option(
            "--allow-tag-moves", help="Move destination tags that point at another digest."
        ),
    ] = False,
    shard_index: Annotated[
        int | None,
        typer.Option(
            "--shard-index",
            envvar="JOB_COMPLETION_INDEX",
            min=0,
            help="This run's shard (a Kubernetes Indexed Job sets JOB_COMPLETION_INDEX).",
        ),
    ] = None,
    shard_count: Annotated[
        int,
        typer.Option("--shard-count", envvar="IMGCTL_SHARD_COUNT", min=1, help="Number of shards."),
    ] = 1,
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", help="Write what REGISTRY\\[/PATH] holds, as images.yaml data."),
    ] = None,
    manifest_based_snapshot_of: Annotated[
        str | None,
        typer.Option(
            "--manifest-based-snapshot-of",
            help="Write what the manifests say REGISTRY should hold.",
        ),
    ] = None,
    minimal_snapshot: Annotated[
        bool,
        typer.Option("--minimal-snapshot", help="Leave out untagged children of indexes."),
    ] = False,
    snapshot_tag: Annotated[
        str | None,
        typer.Option("--snapshot-tag", help="Only digests carrying this tag."),
    ] = None,
    output: Annotated[
        CipOutput,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            help="Plan: text or json; snapshot: yaml or csv.",
        ),
    ] = CipOutput.text,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Images copied at once.")] = 8,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            callback=_per_second,
            help="Requests per second across all registries.",
        ),
    ] = 50.0,
    burst: BurstOpt = 5,
    catalog_url: Annotated[
        str | None,
        typer.Option(
            "--catalog-url",
            envvar="IMGCTL_CATALOG_URL",
            help="Record what --confirm promoted (and found present) in this catalog.",
        ),
    ] = None,
    catalog_token: Annotated[
        str | None,
        typer.Option("--catalog-token", envvar="IMGCTL_CATALOG_TOKEN", help="Token for it."),
    ] = None,
    catalog_environment: Annotated[
        str | None,
        typer.Option("--catalog-environment", help="The environment the destinations belong to."),
    ] = None,
) -> None:
    """Promote what kpromo manifests list (dry run unless --confirm), or write snapshots."""
    from imgctl.cli import _cip

    _cip.cip(
        replace(connection, rate_limit=rate_limit, burst=burst),
        _cip.CipOptions(
            manifest=manifest,
            thin_manifest_dir=thin_manifest_dir,
            confirm=confirm,
            parse_only=parse_only,
            strict=strict,
            allow_tag_moves=allow_tag_moves,
            shard_index=shard_index,
            shard_count=shard_count,
            snapshot=snapshot,
            manifest_based_snapshot_of=manifest_based_snapshot_of,
            minimal_snapshot=minimal_snapshot,
            snapshot_tag=snapshot_tag,
            output=output.value,
            jobs=jobs,
            catalog_url=catalog_url,
            catalog_token=catalog_token,
            catalog_environment=catalog_environment,
        ),
    )


catalog_app = typer.Typer(
    name="catalog",
    help="The catalog: which images were promoted where (imagelist-compatible API).",
    no_args_is_help=True,
)
app.add_typer(catalog_app)

CatalogUrlOpt = Annotated[
    str,
    typer.Option(
        "--catalog-url",
        envvar="IMGCTL_CATALOG_URL",
        help="Base URL of the catalog API (the server's HTTP side).",
    ),
]
CatalogTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="IMGCTL_CATALOG_TOKEN", help="Bearer token for writes (tokens file)."
    ),
]


@catalog_app.command("ls")
def catalog_ls(
    url: CatalogUrlOpt = "http://localhost:8080",
    name: Annotated[str | None, typer.Option("--name", help="Exact image name.")] = None,
    environment: Annotated[str | None, typer.Option("--environment", "-e")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    digest: Annotated[str | None, typer.Option("--digest")] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="created_at, updated_at, name or id (descending).")
    ] = "updated_at",
    output: OutputOpt = Output.text,
) -> None:
    """List catalog images."""
    from imgctl.cli import _catalog

    filters = {"name": name, "environment": environment, "tag": tag, "digest": digest}
    _catalog.ls(url, filters, sort, output is Output.json)


@catalog_app.command("get")
def catalog_get(
    image_id: Annotated[str, typer.Argument(help="Image id (may contain / and @).")],
    url: CatalogUrlOpt = "http://localhost:8080",
    output: OutputOpt = Output.text,
) -> None:
    """Show one catalog image."""
    from imgctl.cli import _catalog

    _catalog.get(url, image_id, output is Output.json)


@catalog_app.command("put")
def catalog_put(
    image_id: Annotated[str, typer.Argument(help="Image id.")],
    name: Annotated[str, typer.Option("--name", help="Image name (repository).")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    environment: Annotated[str | None, typer.Option("--environment", "-e")] = None,
    url: CatalogUrlOpt = "http://localhost:8080",
    token: CatalogTokenOpt = None,
) -> None:
    """Create an image, or replace the tags of an existing one."""
    from imgctl.cli import _catalog

    _catalog.put(url, token, image_id, name, tag or [], environment)


@catalog_app.command("rm")
def catalog_rm(
    image_id: Annotated[str, typer.Argument(help="Image id.")],
    url: CatalogUrlOpt = "http://localhost:8080",
    token: CatalogTokenOpt = None,
) -> None:
    """Delete an image from the catalog."""
    from imgctl.cli import _catalog

    _catalog.rm(url, token, image_id)


@catalog_app.command("serve")
def catalog_serve(
    http_address: Annotated[
        str, typer.Option("--http-address", help="HOST:PORT to listen on.")
    ] = "127.0.0.1:8080",
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            envvar="IMGCTL_TOKENS_FILE",
            help="imagelist tokens YAML for writes (watched).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="IMGCTL_DATABASE_URL",
            help="Database (default: SQLite in the state directory).",
        ),
    ] = None,
    allow_anonymous_writes: AnonymousWritesOpt = False,
) -> None:
    """Serve the catalog API and the admission webhook alone (no gRPC)."""
    from imgctl.cli import _catalog

    _catalog.serve(http_address, tokens_file, database_url, allow_anonymous_writes)


scan_app = typer.Typer(
    name="scan",
    help="Scan repositories for tags and apply tag policies (Flux semantics).",
    invoke_without_command=True,
)
app.add_typer(scan_app)


@scan_app.callback()
def scan(
    context: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="IMGCTL_WATCHES_FILE",
            help="Watches YAML (see docs/scanning.md).",
            dir_okay=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Scan every watch once, print the result, exit.")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Scan the watches of --config: once (--once), or on their intervals until Ctrl-C."""
    if context.invoked_subcommand is not None:
        return
    from imgctl.cli import _scan

    if config is None:
        _registry.fail(
            "give the watches file: imgctl scan --config watches.yaml [--once]",
            _registry.EXIT_INVALID,
        )
    _scan.scan(config, once=once, json_output=output is Output.json)


@scan_app.command("status")
def scan_status(
    url: CatalogUrlOpt = "http://localhost:8080",
    output: OutputOpt = Output.text,
) -> None:
    """Show the watches of a running server (its GET /scan)."""
    from imgctl.cli import _scan

    _scan.status(url, json_output=output is Output.json)


@app.command("demo")
def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Leave everything running and print commands to try; Ctrl-C stops it."
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Use this (new or empty) directory instead of a temporary one, and keep it.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the whole product on loopback ports: registries, issuer, server, a promotion."""
    from imgctl.cli import _demo

    _demo.run(keep=keep, workdir=workdir)


registry_app = typer.Typer(
    name="registry",
    help="An embedded OCI registry on the filesystem, for demos, development and tests.",
    no_args_is_help=True,
)
app.add_typer(registry_app)


@registry_app.command("serve")
def registry_serve(
    root: Annotated[
        Path,
        typer.Option("--root", help="Directory holding the registry's blobs, manifests and tags."),
    ],
    address: Annotated[
        str, typer.Option("--address", help="HOST:PORT to listen on.")
    ] = "127.0.0.1:5000",
    htpasswd: Annotated[
        Path | None,
        typer.Option(
            "--htpasswd",
            help="Require Basic auth with these bcrypt users (htpasswd -B).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve an OCI distribution registry (spec v1.1) from --root until Ctrl-C or SIGTERM."""
    from imgctl.cli import _registry_serve

    _registry_serve.serve(root, address, htpasswd)
