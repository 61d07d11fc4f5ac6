"""Typer application: command definitions only; behaviour lives in imgctl.registry."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from imgctl import __version__
from imgctl.cli import _registry

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


InsecureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure-registry",
        envvar="IMGCTL_INSECURE_REGISTRIES",
        help="Registry host[:port] that may use plain HTTP or unverified TLS (repeatable). "
        "Loopback registries may always use plain HTTP.",
        show_default=False,
    ),
]
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        envvar="IMGCTL_CA_CERT",
        help="PEM file of extra CA certificates to trust for registries.",
        exists=True,
        dir_okay=False,
    ),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option("--registry-username", help="Username for every registry this command uses."),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option("--registry-password", help="Password for --registry-username."),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
RateOpt = Annotated[
    float | None,
    typer.Option(
        "--rate-limit", help="Requests per second across all registries (default: no limit)."
    ),
]
BurstOpt = Annotated[
    int, typer.Option("--burst", min=1, help="Requests allowed at once above the rate.")
]
RetriesOpt = Annotated[
    int, typer.Option("--retries", min=0, help="Retries on connection errors, 429 and 5xx.")
]


@app.command()
def copy(
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
    insecure_registry: InsecureOpt = None,
    ca_cert: CaCertOpt = None,
    registry_username: UsernameOpt = None,
    registry_password: PasswordOpt = None,
    rate_limit: RateOpt = None,
    burst: BurstOpt = 5,
    retries: RetriesOpt = 5,
) -> None:
    """Copy images between registries, digests unchanged (all platforms of an index)."""
    _registry.copy(
        _registry.Connection(
            insecure_registry or [],
            ca_cert,
            registry_username,
            registry_password,
            rate_limit,
            burst,
            retries,
        ),
        source,
        destination,
        from_file,
        jobs=jobs,
        blob_jobs=blob_jobs,
        chunk_size=chunk_size * 1024 * 1024 if chunk_size else None,
        json_output=output is Output.json,
    )


@app.command()
def digest(
    reference: Annotated[str, typer.Argument(help="Image reference.")],
    insecure_registry: InsecureOpt = None,
    ca_cert: CaCertOpt = None,
    registry_username: UsernameOpt = None,
    registry_password: PasswordOpt = None,
    retries: RetriesOpt = 5,
) -> None:
    """Print the digest of an image's manifest or index."""
    _registry.digest(
        _registry.Connection(
            insecure_registry or [],
            ca_cert,
            registry_username,
            registry_password,
            retries=retries,
        ),
        reference,
    )


@app.command()
def manifest(
    reference: Annotated[str, typer.Argument(help="Image reference.")],
    insecure_registry: InsecureOpt = None,
    ca_cert: CaCertOpt = None,
    registry_username: UsernameOpt = None,
    registry_password: PasswordOpt = None,
    retries: RetriesOpt = 5,
) -> None:
    """Print a manifest exactly as the registry stores it."""
    _registry.manifest(
        _registry.Connection(
            insecure_registry or [],
            ca_cert,
            registry_username,
            registry_password,
            retries=retries,
        ),
        reference,
    )


@app.command("ls")
def ls(
    repository: Annotated[str, typer.Argument(help="Repository: REGISTRY/REPO.")],
    full_ref: Annotated[
        bool, typer.Option("--full-ref", help="Print REGISTRY/REPO:TAG instead of TAG.")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Tags asked for per page.")
    ] = 1000,
    output: OutputOpt = Output.text,
    insecure_registry: InsecureOpt = None,
    ca_cert: CaCertOpt = None,
    registry_username: UsernameOpt = None,
    registry_password: PasswordOpt = None,
    retries: RetriesOpt = 5,
) -> None:
    """List the tags of a repository."""
    _registry.list_tags(
        _registry.Connection(
            insecure_registry or [],
            ca_cert,
            registry_username,
            registry_password,
            retries=retries,
        ),
        repository,
        full_ref=full_ref,
        page_size=page_size,
        json_output=output is Output.json,
    )
