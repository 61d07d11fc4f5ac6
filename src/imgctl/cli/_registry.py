"""Registry commands: ``imgctl copy``, ``digest``, ``manifest``, ``ls``.

Flags in, one call to the registry client or the copy engine, the result out. Every failure is
one line on stderr and exit status 1 (README: a copy that failed exits 1).
"""

from __future__ import annotations

import gc
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgctl.cli._exit import fail
from imgctl.cli._flags import BurstOpt, Connection, OutputOpt, RateOpt, parse_ref, registry_command
from imgctl.cli._output import Output, copy_progress, mib, print_document
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.oci import Reference
    from imgctl.remote import CopyResult, RegistryClient

__all__ = ["Referrers", "ReferrersOpt", "app"]

app = typer.Typer()


class Referrers(StrEnum):
    """Which referrers travel with an image (imgctl.remote's ReferrerSelection)."""

    all = "all"
    signatures = "signatures"
    none = "none"


# Shared with imgctl cip.
ReferrersOpt = Annotated[
    Referrers,
    typer.Option(
        "--referrers",
        case_sensitive=False,
        help="Referrers copied with each image: all (signatures, attestations, SBOMs, OCI "
        "referrers), signatures (.sig tags and signature referrers) or none.",
    ),
]


@app.command()
@registry_command
def copy(
    connection: Connection,
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
            help="Upload every blob in resumable PATCH chunks of this many MiB (default: "
            "32 MiB chunks for blobs of 128 MiB and more, one streamed PUT for the others).",
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="Copy only this platform's manifest (os/arch\\[/variant]), not the whole index.",
        ),
    ] = None,
    referrers: ReferrersOpt = Referrers.all,
    output: OutputOpt = Output.text,
    rate_limit: RateOpt = None,
    burst: BurstOpt = 5,
) -> None:
    """Copy images between registries, digests unchanged (all platforms of an index).

    Each image's referrers (cosign's .sig/.att/.sbom tags, OCI 1.1 referrers) follow it,
    written before its tag; --referrers narrows that down.
    """
    from imgctl.oci.platform import parse_platform
    from imgctl.remote import CopyOptions, CopyProgress, copy_images

    try:
        wanted = parse_platform(platform) if platform is not None else None
    except ImgctlError as exc:
        fail(f"--platform: {exc}")

    if from_file is not None:
        if source or destination:
            fail("give either SRC DST or --from-file, not both")
        pairs = read_pairs(from_file)
    elif source and destination:
        pairs = [(parse_ref(source), parse_ref(destination))]
    else:
        fail("copy needs SRC and DST (or --from-file FILE)")

    options = CopyOptions(
        image_concurrency=jobs,
        blob_concurrency=blob_jobs,
        chunk_size=chunk_size * 1024 * 1024 if chunk_size else None,
        platform=wanted,
        referrers=referrers.value,
    )
    progress = CopyProgress()
    connection = replace(connection, rate_limit=rate_limit, burst=burst)
    # The modules imported so far live as long as the process: the cycle collector need not
    # walk them again and again while the copy allocates (5 % of a cold copy's perf samples).
    gc.freeze()
    bar = output is Output.text and sys.stderr.isatty()
    with copy_progress(progress, enabled=bar):
        results = connection.run(lambda client: copy_images(client, pairs, options, progress))
    _report(results, output)
    if not all(r.ok for r in results):
        raise SystemExit(1)


def read_pairs(path: Path) -> list[tuple[Reference, Reference]]:
    """Read 'SRC DST' lines; blank lines and # comments are skipped."""
    from imgctl._internal.files import read_text
    from imgctl.oci import Reference

    try:
        text = read_text(path, "pair list")
    except ImgctlError as exc:
        fail(str(exc))
    pairs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            fail(
                f"{path}:{number}: expected 'SRC DST', got {len(fields)} field(s): {raw.strip()!r}"
            )
        try:
            pairs.append((Reference.parse(fields[0]), Reference.parse(fields[1])))
        except ImgctlError as exc:
            fail(f"{path}:{number}: {exc}")
    if not pairs:
        fail(f"{path}: no 'SRC DST' pairs found")
    return pairs


def _report(results: list[CopyResult], output: Output) -> None:
    if output is not Output.text:
        print_document([r.as_dict() for r in results], output)
        return
    if len(results) == 1 and not results[0].ok:
        _report_referrers(results[0])
        print(f"imgctl: error: {results[0].error}", file=sys.stderr)
        return
    for r in results:
        if r.ok:
            detail = (
                f"{r.blobs_copied} blobs copied ({mib(r.bytes_copied)}), "
                f"{r.blobs_mounted} mounted, {r.blobs_skipped} already there"
                if r.status == "copied"
                else "already up to date"
            )
            print(f"{r.status:9} {r.source} -> {r.destination} {r.digest}  {detail}")
        else:
            print(f"failed    {r.source} -> {r.destination}: {r.error}", file=sys.stderr)
        _report_referrers(r)
    failed = sum(not r.ok for r in results)
    if failed and len(results) > 1:
        print(f"imgctl: error: {failed} of {len(results)} copies failed", file=sys.stderr)


def _report_referrers(result: CopyResult) -> None:
    """One line per referrer that was written, merged, skipped or failed (not the unchanged)."""
    counts: dict[str, int] = {}
    for referrer in result.referrers:
        counts[referrer.status] = counts.get(referrer.status, 0) + 1
        if referrer.status == "unchanged":
            continue
        reason = f": {referrer.reason}" if referrer.reason else ""
        stream = sys.stderr if referrer.status == "failed" else sys.stdout
        print(
            f"  referrer {referrer.status:9} {referrer.label} ({referrer.kind}){reason}",
            file=stream,
        )
    if counts.get("unchanged"):
        print(f"  referrers already there: {counts['unchanged']}")


@app.command()
@registry_command
def digest(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="Image reference.")],
) -> None:
    """Print the digest of an image's manifest or index."""
    ref = parse_ref(reference)

    async def work(client: RegistryClient) -> str:
        desc = await client.head_manifest(ref)
        if desc is None:
            from imgctl.errors import NotFoundError

            raise NotFoundError(f"manifest {ref} not found", status=404)
        return str(desc.digest)

    print(connection.run(work))


@app.command()
@registry_command
def manifest(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="Image reference.")],
) -> None:
    """Print a manifest exactly as the registry stores it."""
    ref = parse_ref(reference)

    async def work(client: RegistryClient) -> bytes:
        return (await client.get_manifest(ref)).data

    data = connection.run(work)
    sys.stdout.buffer.write(data)
    if sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@app.command("ls")
@registry_command
def ls(
    connection: Connection,
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
    ref = parse_ref(repository, repository=True)

    async def work(client: RegistryClient) -> list[str]:
        return await client.list_tags(ref, page_size=page_size)

    tags = connection.run(work)
    if output is not Output.text:
        print_document({"name": ref.name, "tags": tags}, output)
        return
    for tag in tags:
        print(f"{ref.name}:{tag}" if full_ref else tag)
