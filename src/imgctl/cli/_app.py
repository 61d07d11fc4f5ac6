"""The ``imgctl`` command tree: the root app, and every command group registered on it.

Each group lives in its own module with its Typer definitions (``_registry``: copy, digest,
manifest, ls; ``_identity``: token, auth, idp; ``_promote``: promote, auth-check; ``_sign``:
sign, verify; ``_server``; ``_cip``; ``demo``; ``_completion``; ``_catalog``; ``_scan``;
``_registry_serve``). A group module imports only the CLI's own light modules at start-up;
what a command needs (httpx, the registry client, grpc, FastAPI, SQLAlchemy...) is imported
when it runs, so ``--help`` is fast.
The order of ``add_typer`` calls is the order of ``imgctl --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from imgctl import __version__
from imgctl.cli._attest import app as attest_commands
from imgctl.cli._audit import app as audit_group
from imgctl.cli._catalog import app as catalog_group
from imgctl.cli._cip import app as cip_command
from imgctl.cli._completion import app as completion_command
from imgctl.cli._identity import app as identity_commands
from imgctl.cli._identity import auth_app as auth_group
from imgctl.cli._identity import idp_app as idp_group
from imgctl.cli._keys import app as key_commands
from imgctl.cli._promote import app as promote_commands
from imgctl.cli._registry import app as registry_commands
from imgctl.cli._registry_serve import app as registry_group
from imgctl.cli._scan import app as scan_group
from imgctl.cli._server import app as server_command
from imgctl.cli._sign import app as sign_commands
from imgctl.cli.demo import app as demo_command

__all__ = ["app"]

app = typer.Typer(
    name="imgctl",
    help="Promote container images between environments with their digests unchanged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


# Commands first, then the groups with subcommands (as --help lists them).
app.add_typer(registry_commands)  # copy, digest, manifest, ls
app.add_typer(identity_commands)  # token
app.add_typer(promote_commands)  # promote, auth-check
app.add_typer(sign_commands)  # sign, verify
app.add_typer(attest_commands)  # attestations, attest
app.add_typer(key_commands)  # generate-key-pair
app.add_typer(server_command)
app.add_typer(cip_command)
app.add_typer(demo_command)
app.add_typer(completion_command)
app.add_typer(auth_group)
app.add_typer(idp_group)
app.add_typer(catalog_group)
app.add_typer(audit_group)
app.add_typer(scan_group)
app.add_typer(registry_group)
