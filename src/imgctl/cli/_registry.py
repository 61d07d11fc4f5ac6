"""Registry commands: ``imgctl copy``, ``digest``, ``manifest``, ``ls``.

Flags in, one call to the registry client or the copy engine, the result out. Every failure is
one line on stderr: exit status 1 when the registry or the copy failed, 2 for a usage error (a
bad reference or pair list, flags that do not go together), 130 on Ctrl-C (README "Exit codes").
"""

from __future__ import annotations

import gc
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgctl.cli._exit import EXIT_INVALID, fail
from imgctl.cli._flags import BurstOpt, Connection, OutputOpt, RateOpt, parse_ref, registry_command
from imgctl.cli._output import Output, copy_progress, mib, print_document
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.authn import Credential
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
    all_tags: Annotated[
        bool,
        typer.Option(
            "--all-tags",
            "-a",
            help="SRC and DST are repositories: copy every tag of SRC to the same tag in DST "
            "(one result each). Tags named sha256-... (cosign's .sig/.att/.sbom, the "
            "referrers fallback) travel with their images instead, unless --referrers none.",
        ),
    ] = False,
    src_creds: Annotated[
        str | None,
        typer.Option(
            "--src-creds",
            envvar="IMGCTL_SRC_CREDS",
            metavar="USER[:PASSWORD]",
            help="Credentials for the source repositories only, before any other source of "
            "credentials (skopeo's flag). Without :PASSWORD it is asked on the terminal.",
            rich_help_panel="Registry access",
        ),
    ] = None,
    dest_creds: Annotated[
        str | None,
        typer.Option(
            "--dest-creds",
            envvar="IMGCTL_DEST_CREDS",
            metavar="USER[:PASSWORD]",
            help="Credentials for the destination repositories only (they win for a "
            "repository that is both), like --src-creds.",
            rich_help_panel="Registry access",
        ),
    ] = None,
    output: OutputOpt = Output.text,
    rate_limit: RateOpt = None,
    burst: BurstOpt = 5,
) -> None:
    """Copy images between registries, digests unchanged (all platforms of an index).

    Each image's referrers (cosign's .sig/.att/.sbom tags, OCI 1.1 referrers) follow it,
    written before its tag; --referrers narrows that down. --all-tags copies a whole
    repository, tag by tag.
    """
    from imgctl.oci.platform import parse_platform
    from imgctl.remote import CopyOptions, CopyProgress, copy_images

    try:
        wanted = parse_platform(platform) if platform is not None else None
    except ImgctlError as exc:
        fail(f"--platform: {exc}", EXIT_INVALID)

    repositories: tuple[Reference, Reference] | None = None
    if from_file is not None:
        if source or destination:
            fail("give either SRC DST or --from-file, not both", EXIT_INVALID)
        if all_tags:
            fail("--all-tags copies one SRC repository to one DST, not --from-file", EXIT_INVALID)
        pairs = read_pairs(from_file)
    elif source and destination and all_tags:
        repositories = (
            _repository_arg("SRC", source),
            _repository_arg("DST", destination),
        )
        pairs = []
    elif source and destination:
        pairs = [_pair(parse_ref(source), parse_ref(destination), "")]
    else:
        fail("copy needs SRC and DST (or --from-file FILE)", EXIT_INVALID)

    options = CopyOptions(
        image_concurrency=jobs,
        blob_concurrency=blob_jobs,
        chunk_size=chunk_size * 1024 * 1024 if chunk_size else None,
        platform=wanted,
        referrers=referrers.value,
    )
    progress = CopyProgress()
    connection = replace(connection, rate_limit=rate_limit, burst=burst)
    sides = [(pair[0], "--src-creds", src_creds) for pair in pairs]
    sides += [(pair[1], "--dest-creds", dest_creds) for pair in pairs]
    if repositories is not None:
        sides = [
            (repositories[0], "--src-creds", src_creds),
            (repositories[1], "--dest-creds", dest_creds),
        ]
    connection = replace(connection, sides=side_credentials(sides))

    async def work(client: RegistryClient) -> list[CopyResult]:
        todo = pairs
        if repositories is not None:
            todo = await _tag_pairs(client, *repositories, referrers)
            progress.images_total = len(todo)
        return await copy_images(client, todo, options, progress)

    # The modules imported so far live as long as the process: the cycle collector need not
    # walk them again and again while the copy allocates (5 % of a cold copy's perf samples).
    gc.freeze()
    bar = output is Output.text and sys.stderr.isatty()
    with copy_progress(progress, enabled=bar):
        results = connection.run(work)
    _report(results, output)
    if not all(r.ok for r in results):
        raise SystemExit(1)


def _repository_arg(what: str, value: str) -> Reference:
    """A --all-tags argument: a repository, without tag or digest."""
    ref = parse_ref(value)
    if ref.tag is not None or ref.digest is not None:
        fail(
            f"--all-tags copies whole repositories: {what} {value!r} names a tag or digest "
            f"(give {ref.name})",
            EXIT_INVALID,
        )
    return ref


async def _tag_pairs(
    client: RegistryClient, source: Reference, destination: Reference, referrers: Referrers
) -> list[tuple[Reference, Reference]]:
    """One pair per tag of ``source``: the same tag in ``destination``."""
    from imgctl.errors import NotFoundError

    tags = await client.list_tags(source)
    if referrers is not Referrers.none:
        # sha256-<hex>[.sig|.att|.sbom]: written by the copy of the image they refer to.
        tags = [t for t in tags if not t.startswith(("sha256-", "sha512-"))]
    if not tags:
        raise NotFoundError(f"{source.name} has no tags to copy", status=404)
    return [(source.with_tag(tag), destination.with_tag(tag)) for tag in sorted(tags)]


def side_credentials(
    sides: list[tuple[Reference, str, str | None]],
) -> tuple[tuple[str, str, Credential, str], ...]:
    """--src-creds/--dest-creds for the repositories of their side (asking a missing password).

    The destination's come last, so that they win for a repository on both sides.
    """
    from imgctl.authn import Credential, split_creds
    from imgctl.cli._flags import ask_passphrase

    given: dict[str, Credential] = {}
    out = []
    for ref, flag, value in sides:
        if value is None:
            continue
        if flag not in given:
            try:
                user, password = split_creds(flag, value)
            except ImgctlError as exc:
                fail(str(exc), EXIT_INVALID)
            if password is None:
                password = ask_passphrase(f"Password for {user} ({flag}): ")
                if password is None:
                    fail(
                        f"{flag} {user!r} has no password and there is no terminal to ask for "
                        f"it: give {flag} USER:PASSWORD (or ${flag[2:].upper().replace('-', '_')})",
                        EXIT_INVALID,
                    )
            given[flag] = Credential(user, password)
        out.append((ref.registry, ref.repository, given[flag], flag))
    return tuple(out)


def read_pairs(path: Path) -> list[tuple[Reference, Reference]]:
    """Read 'SRC DST' lines; blank lines and # comments are skipped."""
    from imgctl._internal.files import read_text
    from imgctl.oci import Reference

    try:
        text = read_text(path, "pair list")
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    pairs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            found = f"got {len(fields)} field(s): {raw.strip()!r}"
            fail(f"{path}:{number}: expected 'SRC DST', {found}", EXIT_INVALID)
        try:
            pair = Reference.parse(fields[0]), Reference.parse(fields[1])
        except ImgctlError as exc:
            fail(f"{path}:{number}: {exc}", EXIT_INVALID)
        pairs.append(_pair(*pair, f"{path}:{number}: "))
    if not pairs:
        fail(f"{path}: no 'SRC DST' pairs found", EXIT_INVALID)
    return pairs


def _pair(source: Reference, destination: Reference, where: str) -> tuple[Reference, Reference]:
    """A pair to copy; one that names the same image twice is a usage error, before any copy."""
    from imgctl.remote import copies_onto_itself

    if copies_onto_itself(source, destination):
        fail(
            f"{where}source and destination are the same image: {source}; give another"
            " destination (a DST without a tag takes SRC's tag)",
            EXIT_INVALID,
        )
    return source, destination


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
        return str((await client.require_manifest(ref)).digest)

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
    repository: Annotated[
        str,
        typer.Argument(
            metavar="REGISTRY/REPO | REGISTRY",
            help="A repository: list its tags. A registry alone (a host with a dot or a port, "
            "or localhost): list its repositories (/v2/_catalog).",
        ),
    ],
    full_ref: Annotated[
        bool,
        typer.Option(
            "--full-ref",
            help="Print REGISTRY/REPO:TAG instead of TAG (REGISTRY/REPO instead of REPO).",
        ),
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Names asked for per page.")
    ] = 1000,
    output: OutputOpt = Output.text,
) -> None:
    """List the tags of a repository, or the repositories of a registry.

    A registry alone lists what its catalog (/v2/_catalog, every page) holds, as crane catalog
    does; many hosted registries (Docker Hub, ghcr.io) do not serve it to anyone.
    """
    registry = registry_only(repository)
    if registry is not None:
        _ls_repositories(connection, registry, full_ref, page_size, output)
        return
    ref = parse_ref(repository, repository=True)

    async def work(client: RegistryClient) -> list[str]:
        return await client.list_tags(ref, page_size=page_size)

    tags = connection.run(work)
    if output is not Output.text:
        print_document({"name": ref.name, "tags": tags}, output)
        return
    for tag in tags:
        print(f"{ref.name}:{tag}" if full_ref else tag)


def registry_only(value: str) -> str | None:
    """The registry host ``value`` names alone (``ghcr.io``, ``localhost:5000/``), else None.

    Docker's rule for a name's first component: a registry when it has a dot or a port or is
    localhost. So ``imgctl ls nginx`` still lists Docker Hub's library/nginx tags.
    """
    host = value.removesuffix("/")
    if not host or "/" in host or "@" in host:
        return None
    name, colon, port = host.rpartition(":")
    if colon and not (name and port.isdigit()):
        return None  # REPO:TAG on Docker Hub, not HOST:PORT
    if "." in host or colon or host == "localhost":
        from imgctl.oci.reference import canonical_registry

        return canonical_registry(host)
    return None


def _ls_repositories(
    connection: Connection, registry: str, full_ref: bool, page_size: int, output: Output
) -> None:
    async def work(client: RegistryClient) -> list[str]:
        return [name async for name in client.iter_repositories(registry, page_size=page_size)]

    repositories = connection.run(work)
    if output is not Output.text:
        print_document({"registry": registry, "repositories": repositories}, output)
        return
    for name in repositories:
        print(f"{registry}/{name}" if full_ref else name)
