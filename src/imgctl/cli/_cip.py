"""``imgctl cip``: kpromo-compatible declarative promotion, and snapshots.

Exit status (docs/manifests.md): 0 when the plan (and, with --confirm, every edge) succeeded;
1 when tag moves were refused, a registry could not be read or an edge failed; 2 for invalid
manifests or flags.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import EXIT_FAILED, EXIT_INVALID, fail, warn
from imgctl.cli._flags import BurstOpt, Connection, per_second, registry_command
from imgctl.cli._output import print_json
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.promotion.manifests import Edge, Manifest, ManifestWarning
    from imgctl.promotion.plan import EdgeOutcome, Plan
    from imgctl.remote import RegistryClient

__all__ = ["app"]

app = typer.Typer()


class CipOutput(StrEnum):
    """Output formats of imgctl cip."""

    text = "text"
    json = "json"
    yaml = "yaml"
    csv = "csv"


@app.command("cip")
@registry_command
def cip(
    connection: Connection,
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
            callback=per_second,
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
    _promote_or_snapshot(
        replace(connection, rate_limit=rate_limit, burst=burst),
        CipOptions(
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


@dataclass(frozen=True)
class CipOptions:
    """The flags of ``imgctl cip``."""

    manifest: Path | None = None
    thin_manifest_dir: Path | None = None
    confirm: bool = False
    parse_only: bool = False
    strict: bool = False
    allow_tag_moves: bool = False
    shard_index: int | None = None
    shard_count: int = 1
    snapshot: str | None = None
    manifest_based_snapshot_of: str | None = None
    minimal_snapshot: bool = False
    snapshot_tag: str | None = None
    output: str = "text"
    jobs: int = 8
    catalog_url: str | None = None
    catalog_token: str | None = None
    catalog_environment: str | None = None


def _load(options: CipOptions) -> tuple[list[Manifest], list[ManifestWarning]]:
    """The manifests, and (thin trees) the entries left out, each printed as a warning."""
    from imgctl.promotion.manifests import load_manifest, load_thin_tree

    if options.manifest and options.thin_manifest_dir:
        fail("give --manifest or --thin-manifest-dir, not both", EXIT_INVALID)
    try:
        if options.manifest:
            return [load_manifest(options.manifest)], []
        if options.thin_manifest_dir:
            tree = load_thin_tree(options.thin_manifest_dir, strict=options.strict)
            for warning in tree.warnings:
                warn(str(warning))
            return list(tree.manifests), list(tree.warnings)
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    fail("give --manifest FILE or --thin-manifest-dir DIR", EXIT_INVALID)


def _print_snapshot(inventory: dict[str, dict[str, list[str]]], output: str) -> None:
    from imgctl.promotion.manifests import snapshot_csv, snapshot_yaml

    if output not in ("yaml", "csv", "text"):
        fail(f"snapshots are written as yaml or csv, not {output}", EXIT_INVALID)
    sys.stdout.write(snapshot_csv(inventory) if output == "csv" else snapshot_yaml(inventory))


def _promote_or_snapshot(connection: Connection, options: CipOptions) -> None:
    """Parse, plan, and with --confirm promote; or write a snapshot."""
    if options.snapshot:
        if options.manifest or options.thin_manifest_dir or options.manifest_based_snapshot_of:
            fail("--snapshot reads a registry; it takes no manifests", EXIT_INVALID)
        from imgctl.promotion.snapshot import registry_snapshot

        target = options.snapshot

        async def snap(client: RegistryClient) -> dict[str, dict[str, list[str]]]:
            return await registry_snapshot(
                client, target, tag=options.snapshot_tag, minimal=options.minimal_snapshot
            )

        _print_snapshot(connection.run(snap), options.output)
        return

    manifests, warnings = _load(options)
    if options.manifest_based_snapshot_of:
        from imgctl.promotion.snapshot import manifest_snapshot

        try:
            inventory = manifest_snapshot(manifests, options.manifest_based_snapshot_of)
        except ImgctlError as exc:
            fail(str(exc), EXIT_INVALID)
        _print_snapshot(inventory, options.output)
        return

    from imgctl.promotion.manifests import edges_of
    from imgctl.promotion.plan import select_shard

    try:
        edges = edges_of(manifests)
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    total = len(edges)
    if options.shard_index is not None or options.shard_count > 1:
        index = options.shard_index or 0
        if not 0 <= index < options.shard_count:
            fail(
                f"--shard-index {index} is outside 0..{options.shard_count - 1} "
                "(check --shard-count and JOB_COMPLETION_INDEX)",
                EXIT_INVALID,
            )
        edges = select_shard(edges, index, options.shard_count)
    if options.parse_only:
        _report_parse(manifests, warnings, edges, total, options)
        return

    async def work(client: RegistryClient) -> tuple[Plan, list[EdgeOutcome]]:
        from imgctl.promotion.plan import execute, make_plan

        plan = await make_plan(client, edges, allow_tag_moves=options.allow_tag_moves)
        outcomes: list[EdgeOutcome] = []
        if options.confirm and not plan.refused:
            outcomes = await execute(client, plan, concurrency=options.jobs)
        return plan, outcomes

    if options.catalog_url and not options.catalog_environment:
        fail(
            "--catalog-url needs --catalog-environment (the environment promoted to)", EXIT_INVALID
        )
    plan, outcomes = connection.run(work)
    failed = [o for o in outcomes if not o.ok]
    recorded = _record(plan, outcomes, options) if options.confirm else 0
    if options.output == "json":
        document: dict[str, Any] = plan.as_dict()
        document["warnings"] = [str(w) for w in warnings]
        document["confirm"] = options.confirm
        document["shard"] = {"index": options.shard_index or 0, "count": options.shard_count}
        if options.confirm:
            document["results"] = [o.as_dict() for o in outcomes]
        print_json(document)
    elif options.output == "text":
        _report_text(plan, outcomes, options, total)
        if options.catalog_url and options.confirm:
            print(f"recorded {recorded} image(s) in the catalog ({options.catalog_environment})")
    else:
        fail(f"a plan is written as text or json, not {options.output}", EXIT_INVALID)
    if plan.refused or plan.unreadable or failed:
        raise SystemExit(EXIT_FAILED)


def _report_parse(
    manifests: list[Manifest],
    warnings: list[ManifestWarning],
    edges: list[Edge],
    total: int,
    options: CipOptions,
) -> None:
    images = sum(len(m.images) for m in manifests)
    digests = sum(len(i.dmap) for m in manifests for i in m.images)
    if options.output == "json":
        document = {
            "manifests": len(manifests),
            "images": images,
            "digests": digests,
            "edges": len(edges),
            "total": total,
            "warnings": [str(w) for w in warnings],
        }
        print(json.dumps(document))
        return
    shard = f" (shard {options.shard_index or 0} of {options.shard_count})"
    skipped = f"; {len(warnings)} warning(s), see above" if warnings else ""
    print(
        f"parsed {len(manifests)} manifest(s), {images} image(s), {digests} digest(s):"
        f" {total} edges"
        + (f", {len(edges)} in this shard{shard}" if len(edges) != total else "")
        + skipped
    )


def _report_text(plan: Plan, outcomes: list[EdgeOutcome], options: CipOptions, total: int) -> None:
    summary = plan.summary()
    mode = "promotion" if options.confirm else "dry run (add --confirm to promote)"
    shard = ""
    if options.shard_count > 1:
        shard = f", shard {options.shard_index or 0} of {options.shard_count} ({total} in all)"
    print(
        f"{mode}: {summary['edges']} edges{shard}; {summary['present']} present, "
        f"{summary['copy']} to copy, {summary['add_tag']} to tag, {summary['lost']} lost, "
        f"{summary['tag_move']} tag moves; {plan.requests} registry requests"
    )
    for action in plan.actions:
        if action.action == "present":
            continue
        edge = action.edge
        where = edge.destination
        if action.error:
            line = f"  unreadable {where}: {action.error}"
        elif action.action == "lost":
            line = f"  lost      {where}: {edge.digest} is not in {edge.source_repository}"
        elif action.action == "tag_move":
            verdict = "will move" if plan.allow_tag_moves else "REFUSED (--allow-tag-moves)"
            line = f"  tag move  {where}: {action.current} -> {edge.digest} {verdict}"
        elif action.action == "add_tag":
            line = f"  add tag   {where} ({edge.digest})"
        else:
            line = f"  copy      {edge.source_repository}@{edge.digest} -> {where}"
        print(line)
    if options.confirm and plan.refused:
        print(f"nothing promoted: {len(plan.refused)} tag move(s) refused", file=sys.stderr)
    failed = [o for o in outcomes if not o.ok]
    if outcomes:
        done = len(outcomes) - len(failed)
        moved = sum(o.bytes_copied for o in outcomes)
        print(f"promoted {done} of {len(outcomes)} edges ({moved / (1 << 20):.1f} MiB copied)")
    for outcome in failed:
        print(f"failed    {outcome.as_dict()['destination']}: {outcome.error}", file=sys.stderr)
    if failed:
        print(
            f"imgctl: error: {len(failed)} edge(s) failed; "
            "run again to finish (what is done stays done)",
            file=sys.stderr,
        )


def _record(plan: Plan, outcomes: list[EdgeOutcome], options: CipOptions) -> int:
    """Record promoted and already-present edges in the catalog, when one is given."""
    if not options.catalog_url or not options.catalog_environment:
        return 0
    from imgctl.catalog.client import record_images

    images: dict[tuple[str, str], set[str]] = {}
    done = [o.edge for o in outcomes if o.ok]
    done += [a.edge for a in plan.actions if a.action == "present"]
    for edge in done:
        tags = images.setdefault((edge.destination_repository, edge.digest), set())
        if edge.tag:
            tags.add(edge.tag)
    try:
        return record_images(
            options.catalog_url,
            options.catalog_token,
            options.catalog_environment,
            {key: sorted(tags) for key, tags in images.items()},
        )
    except ImgctlError as exc:
        fail(f"promoted, but not recorded in the catalog: {exc}", EXIT_FAILED)
