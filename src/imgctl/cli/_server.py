"""``imgctl server``: the promotion server, configured by flags and the environment.

Everything it runs is assembled by ``imgctl.server.app``; this module only turns flags into
``ServerSettings``. A configuration that cannot work stops it before it listens, with every
problem listed and exit status 2; a database it cannot open with exit status 1
(docs/server.md), Ctrl-C with 130.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Final

import typer
from typer import _click

from imgctl.cli._exit import exit_code, fail, interrupted
from imgctl.cli._flags import (
    AnonymousWritesOpt,
    PublicPagesOpt,
    RequireAttestationOpt,
    RequireSignatureOpt,
    seconds,
)
from imgctl.cli._help import PanelCommand
from imgctl.errors import ImgctlError

__all__ = ["app"]

app = typer.Typer()

# The help page's "Environment:" section, as kubectl and many daemons have one: (variable, what
# it is), "(required)" first where the server does not start without it. Plain data, so that
# --help stays as fast as before; docs/server.md has every variable.
SERVER_ENVIRONMENT: Final[tuple[tuple[str, str], ...]] = (
    ("OIDC_ISSUER_URL", "(required) The OIDC issuer: https://dex.example.com"),
    ("OIDC_AUDIENCE", "(required) The audience tokens must carry: this server's URL"),
    (
        "IMGCTL_REGISTRY_<NAME>",
        "(required, one or more) The registry of environment NAME: host[:port][/prefix]",
    ),
    ("IMGCTL_SPA_<NAME>", "The S3 bucket suffix of environment NAME (SPA promotions)"),
    ("OIDC_ALLOWED_GROUPS", "Groups allowed to promote, comma-separated ('*': any caller)"),
    ("OIDC_GROUPS_CLAIM", "The token claim holding the groups (default: groups)"),
    ("OIDC_LEEWAY", "Seconds of clock skew allowed on tokens (default: 30)"),
    ("IMGCTL_DEFAULT_SOURCE", "The source environment when a request names none"),
    ("IMGCTL_DATABASE_URL", "postgresql://... or sqlite:////path (default: SQLite file)"),
    ("IMGCTL_STATE_DIR", "Where the default SQLite file lives"),
    ("IMGCTL_PROMOTION_LEASE", "Seconds a replica holds a promotion (default: 60)"),
    ("IMGCTL_SLACK_WEBHOOK_URL", "Post each promotion to this Slack webhook"),
    ("IMGCTL_PIPELINE", "The environments' order on the web pages: dev,int,prod"),
    ("IMGCTL_LOG_LEVEL", "debug, info (default) or warning; debug shows migrations"),
)


class ServerCommand(PanelCommand):
    """``imgctl server``'s command: its help lists the environment after the options."""

    environment: ClassVar[tuple[tuple[str, str], ...]] = SERVER_ENVIRONMENT

    def format_epilog(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The ``Environment:`` section, then the epilog (if any)."""
        with formatter.section("Environment"):
            formatter.write_dl(list(self.environment))
        super().format_epilog(ctx, formatter)


@app.command("server", cls=ServerCommand)
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
            help="YAML: destinations and the groups allowed to promote there. Default: "
            "$IMGCTL_POLICY_FILE.",
            dir_okay=False,
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", callback=seconds, help="Seconds running promotions get to finish on stop."
        ),
    ] = 60.0,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="imagelist tokens YAML: bearer tokens for catalog writes (watched). Default: "
            "$IMGCTL_TOKENS_FILE.",
        ),
    ] = None,
    watches: Annotated[
        Path | None,
        typer.Option(
            "--watches",
            help="Watches YAML: repositories to scan, tag policies, auto-promotions. Default: "
            "$IMGCTL_WATCHES_FILE.",
            dir_okay=False,
        ),
    ] = None,
    sign_key: Annotated[
        str | None,
        typer.Option(
            "--sign-key",
            help="Sign every promoted image with this key (a cosign or PEM key file, or a KMS "
            "URI), in the destination registry. Default: $IMGCTL_SIGN_KEY.",
            show_default=False,
        ),
    ] = None,
    max_signature_ops: Annotated[
        int | None,
        typer.Option(
            "--max-signature-ops",
            min=1,
            max=1000,
            help="Signatures made at once across promotions (1 to 1000). Default: "
            "$IMGCTL_MAX_SIGNATURE_OPS, else 50.",
            show_default=False,
        ),
    ] = None,
    allow_anonymous_catalog_writes: AnonymousWritesOpt = False,
    require_signature: RequireSignatureOpt = None,
    require_attestation: RequireAttestationOpt = None,
    public_pages: PublicPagesOpt = False,
) -> None:
    """Run the promotion server (configured by OIDC_* and IMGCTL_* environment variables).

    The whole configuration is checked before anything listens; every problem is listed at
    once (exit status 2). Once listening, one line on stderr says where:
    'imgctl server: listening on grpc HOST:PORT, http HOST:PORT'.
    """
    import asyncio

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
        watches_file=watches,
        sign_key=sign_key,
        max_signature_ops=max_signature_ops,
        allow_anonymous_catalog_writes=allow_anonymous_catalog_writes,
        require_signature=tuple(require_signature or ()),
        require_attestation=tuple(require_attestation or ()),
        public_pages=public_pages,
    )
    from imgctl._internal.listen import fast_event_loop

    fast_event_loop()
    try:
        asyncio.run(run_server(settings))
    except ImgctlError as exc:
        # A configuration that cannot work (a UsageError) is 2, the database 1 (docs/server.md).
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        interrupted()
