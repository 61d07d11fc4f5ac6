"""``imgctl append``: crane's append, an image from tarball layers pushed with our client.

The layers are read and checked before anything is sent: a file that is not a tar archive is
one line and exit status 2, and so is a base without the platform asked for; any failure of a
registry exits 1, as for the other registry commands (crane and skopeo do the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgctl.cli._exit import EXIT_INVALID, fail
from imgctl.cli._flags import Connection, parse_ref, registry_command
from imgctl.errors import ImgctlError, UsageError

if TYPE_CHECKING:
    from imgctl.oci import Platform, Reference
    from imgctl.remote import AppendResult, RegistryClient

__all__ = ["app"]

app = typer.Typer()


@app.command("append")
@registry_command
def append(
    connection: Connection,
    new_layers: Annotated[
        list[Path],
        typer.Option(
            "--new-layer",
            "-f",
            help="A tarball to append as a layer (plain or gzipped); repeat for more, in order.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    new_tag: Annotated[
        str,
        typer.Option("--new-tag", "-t", help="Where to push the image: REGISTRY/REPO:TAG."),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            "-b",
            help="Image to append to (its layers are kept); default: none, an image from scratch.",
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="os/arch\\[/variant] of the new image (default linux/amd64), or the one to "
            "pick from a multi-platform --base.",
        ),
    ] = None,
) -> None:
    """Append tarball layers to a base image (or to nothing) and push it; print its digest.

    As crane append: each layer is gzipped (a gzipped tarball is pushed as it is), the image
    config lists its diff id and a history entry, and the OCI manifest is pushed to --new-tag.
    Prints REGISTRY/REPO@sha256:... of what was pushed.
    """
    import tempfile

    from imgctl.oci.platform import parse_platform

    try:
        wanted = parse_platform(platform) if platform is not None else None
    except ImgctlError as exc:
        fail(f"--platform: {exc}", EXIT_INVALID)
    target = parse_ref(new_tag)
    base_ref = parse_ref(base) if base is not None else None
    # Plain tarballs are gzipped into files here, read and sent a megabyte at a time: a layer
    # of any size is never held in memory. The directory goes with everything in it.
    with tempfile.TemporaryDirectory(prefix="imgctl-append-") as spool:
        result = _push(connection, new_layers, Path(spool), target, base_ref, wanted)
    print(f"{result.reference.name}@{result.digest}")


def _push(
    connection: Connection,
    paths: list[Path],
    spool: Path,
    target: Reference,
    base: Reference | None,
    platform: Platform | None,
) -> AppendResult:
    from imgctl.oci.build import TarLayer, layer_from_tar_file

    layers: list[tuple[TarLayer, str]] = []
    for path in paths:
        try:
            layers.append((layer_from_tar_file(path, spool), path.name))
        except OSError as exc:
            fail(f"layer {path}: {exc.strerror or exc}", EXIT_INVALID)
        except ImgctlError as exc:
            fail(str(exc), EXIT_INVALID)

    async def work(client: RegistryClient) -> AppendResult | UsageError:
        from imgctl.remote import append_layers

        try:
            return await append_layers(client, target, layers, base=base, platform=platform)
        except UsageError as exc:
            return exc  # a base without --platform's image: a usage error, exit 2 below

    # As the other registry commands (README's exit codes): a usage error exits 2, any failure
    # of a registry 1, as crane and skopeo do.
    result = connection.run(work)
    if isinstance(result, UsageError):
        fail(str(result), EXIT_INVALID)
    return result
