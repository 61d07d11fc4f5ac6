"""``imgctl cip``: kpromo-compatible declarative promotion, and snapshots.

With ``--verify-key`` / ``--certificate-identity`` the sources must be signed, and with
``--vuln-severity-threshold`` they must pass the vulnerability gate (kpromo's validate phase, dry
runs included; docs/cip.md); with ``--sign-key`` the promoted digests are signed in their primary
registries (kpromo's sign phase); ``cip replicate-signatures`` brings those signatures to the
mirrors (docs/signing.md).

Exit status (docs/manifests.md): 0 when the plan (and, with --confirm, every edge) succeeded;
1 when tag moves were refused, a registry could not be read, an edge failed, a source was not
signed as required, the vulnerability gate refused or could not judge a source, or a promoted
digest could not be signed; 2 for invalid manifests or flags.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import EXIT_FAILED, EXIT_INVALID, fail, warn
from imgctl.cli._flags import BurstOpt, Connection, per_second, registry_command
from imgctl.cli._output import print_json
from imgctl.cli._registry import Referrers, ReferrersOpt
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.promotion.manifests import Edge, Manifest, ManifestWarning
    from imgctl.promotion.plan import EdgeOutcome, Plan
    from imgctl.promotion.replicate import Replication
    from imgctl.promotion.signing import SignResult, Validation
    from imgctl.promotion.vulns import Scanner, VulnVerdict
    from imgctl.remote import RegistryClient
    from imgctl.trust import Signer, TrustPolicy

__all__ = ["app"]

app = typer.Typer(
    name="cip",
    help="Promote what kpromo manifests list (dry run unless --confirm), or write snapshots.",
    invoke_without_command=True,
)
_SIGNING = "Signing (kpromo's validate and sign phases)"
_VULNS = "Vulnerability gate (kpromo's validate phase)"
# kpromo's bounds (50); 1000 at most (imgctl.promotion.signing.MAX_SIGNATURE_CONCURRENCY).
MaxSignatureOpsOpt = Annotated[
    int,
    typer.Option(
        "--max-signature-ops",
        min=1,
        max=1000,
        help="Signatures made or checked at once (1 to 1000).",
        rich_help_panel=_SIGNING,
    ),
]
MaxSignatureCopiesOpt = Annotated[
    int,
    typer.Option(
        "--max-signature-copies",
        min=1,
        max=1000,
        help="Signatures copied at once (1 to 1000).",
        rich_help_panel=_SIGNING,
    ),
]


class CipOutput(StrEnum):
    """Output formats of imgctl cip."""

    text = "text"
    json = "json"
    yaml = "yaml"
    csv = "csv"


@app.callback()
@registry_command
def cip(
    context: typer.Context,
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
    referrers: ReferrersOpt = Referrers.all,
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
    sign_key: Annotated[
        str | None,
        typer.Option(
            "--sign-key",
            help="Sign each promoted digest in its primary registry (the manifest's first "
            "destination) with this key: a cosign or PEM key file, or a KMS URI.",
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    sign: Annotated[
        str | None,
        typer.Option(
            "--sign",
            metavar="true|false",
            help="Sign promoted digests (kpromo's --sign): true whenever --sign-key is given; "
            "--sign=false turns it off.",
            show_default=False,
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    max_signature_ops: MaxSignatureOpsOpt = 50,
    verify_key: Annotated[
        list[str] | None,
        typer.Option(
            "--verify-key",
            help="Promote only sources carrying a signature this key verifies (repeatable: "
            "any of the keys).",
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    certificate_identity: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity",
            help="Or a keyless signature whose Fulcio certificate names this identity.",
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    certificate_oidc_issuer: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer",
            help="The OIDC issuer of --certificate-identity.",
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    certificate_chain: Annotated[
        Path | None,
        typer.Option(
            "--certificate-chain",
            help="Keyless: PEM file of the trusted Fulcio root (and intermediate) certificates.",
            dir_okay=False,
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            help="Keyless: a sigstore trusted_root.json (its Fulcio certificates and Rekor keys).",
            dir_okay=False,
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    rekor_public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--rekor-public-key",
            help="Keyless: PEM public key of the Rekor log (repeatable).",
            dir_okay=False,
            show_default=False,
            rich_help_panel=_SIGNING,
        ),
    ] = None,
    vuln_severity_threshold: Annotated[
        int,
        typer.Option(
            "--vuln-severity-threshold",
            min=0,
            max=5,
            help="Refuse a source with a vulnerability at or above this severity: 1 MINIMAL, "
            "2 LOW, 3 MEDIUM, 4 HIGH, 5 CRITICAL (kpromo's scale; 0 turns the gate off).",
            rich_help_panel=_VULNS,
        ),
    ] = 0,
    vuln_scanner: Annotated[
        str | None,
        typer.Option(
            "--vuln-scanner",
            metavar="COMMAND",
            help="Also run this scanner on each source, {ref} standing for REPOSITORY@DIGEST "
            "(no shell), e.g. 'trivy image --format json {ref}'; it prints Trivy, Grype or SARIF "
            "JSON.",
            rich_help_panel=_VULNS,
        ),
    ] = None,
    vuln_scanner_timeout: Annotated[
        float,
        typer.Option(
            "--vuln-scanner-timeout",
            min=0.001,
            max=86400.0,
            help="Seconds the scanner may take per image before it is stopped.",
            rich_help_panel=_VULNS,
        ),
    ] = 300.0,
) -> None:
    """Promote what kpromo manifests list (dry run unless --confirm), or write snapshots."""
    if context.invoked_subcommand is not None:
        return
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
            referrers=referrers.value,
            catalog_url=catalog_url,
            catalog_token=catalog_token,
            catalog_environment=catalog_environment,
            sign_key=sign_key,
            sign=_sign_flag(sign),
            max_signature_ops=max_signature_ops,
            verify_keys=tuple(verify_key or ()),
            certificate_identity=certificate_identity,
            certificate_oidc_issuer=certificate_oidc_issuer,
            certificate_chain=certificate_chain,
            trusted_root=trusted_root,
            rekor_public_keys=tuple(rekor_public_key or ()),
            vuln_threshold=vuln_severity_threshold,
            vuln_scanner=vuln_scanner,
            vuln_scanner_timeout=vuln_scanner_timeout,
        ),
    )


@app.command("replicate-signatures")
@registry_command
def replicate_signatures(
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
        bool, typer.Option("--confirm", help="Copy (default: a dry run that writes nothing).")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Thin trees: refuse the tree when an entry fails validation."
        ),
    ] = False,
    max_signature_copies: MaxSignatureCopiesOpt = 50,
    output: Annotated[
        CipOutput, typer.Option("--output", "-o", case_sensitive=False, help="text or json.")
    ] = CipOutput.text,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit", callback=per_second, help="Requests per second across all registries."
        ),
    ] = 50.0,
    burst: BurstOpt = 5,
) -> None:
    """Copy each manifest's primary signatures to its mirrors (dry run unless --confirm)."""
    if output not in (CipOutput.text, CipOutput.json):
        fail(f"replicate-signatures writes text or json, not {output.value}", EXIT_INVALID)
    manifests, _ = _load(
        CipOptions(manifest=manifest, thin_manifest_dir=thin_manifest_dir, strict=strict)
    )

    async def work(client: RegistryClient) -> Replication:
        from imgctl.promotion.replicate import plan_replication, replicate

        plan = await plan_replication(client, manifests)
        if confirm:
            return await replicate(client, plan, max_copies=max_signature_copies)
        return plan

    done = replace(connection, rate_limit=rate_limit, burst=burst).run(work)
    if output is CipOutput.json:
        print_json({"confirm": confirm, **done.as_dict()})
    else:
        _report_replication(done, confirm=confirm)
    if done.count("failed"):
        raise SystemExit(EXIT_FAILED)


def _report_replication(done: Replication, *, confirm: bool) -> None:
    mode = "replicated signatures" if confirm else "dry run (add --confirm to copy)"
    signed = done.groups - done.unsigned
    print(
        f"{mode}: {done.groups} digest(s) with mirrors, {signed} signed in their primary; "
        f"{done.count('copied') if confirm else done.count('copy')} "
        f"{'copied' if confirm else 'to copy'}, {done.count('skipped')} already there, "
        f"{done.count('failed')} failed; {done.listings} repositories listed, "
        f"{done.requests} registry requests"
    )
    for copy in done.copies:
        if copy.status in ("copy", "copied"):
            print(f"  {copy.status:9} {copy.source} -> {copy.destination}")
    for copy in done.copies:
        if copy.status == "failed":
            print(f"failed    {copy.source} -> {copy.destination}: {copy.error}", file=sys.stderr)


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
    referrers: str = "all"  # which referrers the plan reads and the promotion copies
    catalog_url: str | None = None
    catalog_token: str | None = None
    catalog_environment: str | None = None
    sign_key: str | None = None
    sign: bool | None = None  # None: sign when a key is given (kpromo's --sign default)
    max_signature_ops: int = 50
    verify_keys: tuple[str, ...] = ()
    certificate_identity: str | None = None
    certificate_oidc_issuer: str | None = None
    certificate_chain: Path | None = None
    trusted_root: Path | None = None
    rekor_public_keys: tuple[Path, ...] = ()
    vuln_threshold: int = 0  # 0: no vulnerability gate (kpromo)
    vuln_scanner: str | None = None
    vuln_scanner_timeout: float = 300.0


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

    signer, trust = _signing(options)
    scanner = _scanner(options)

    async def work(client: RegistryClient) -> _Run:
        from imgctl.promotion.plan import execute, make_plan

        plan = await make_plan(
            client,
            edges,
            allow_tag_moves=options.allow_tag_moves,
            referrers=options.referrers,  # type: ignore[arg-type]
        )
        run = _Run(plan)
        if trust is not None:
            await _validate(client, run, trust, options)
        if options.vuln_threshold:
            await _scan_vulnerabilities(client, run, scanner, options)
        if options.confirm and not plan.refused:
            held = run.unsigned | run.gated
            allowed = [a for a in plan.actions if _source(a.edge) not in held]
            runnable = replace(plan, actions=allowed) if held else plan
            run.outcomes = await execute(client, runnable, concurrency=options.jobs)
            run.outcomes += run.refusals()
            if signer is not None:
                await _sign(client, run, signer, manifests, options)
        return run

    if options.catalog_url and not options.catalog_environment:
        fail(
            "--catalog-url needs --catalog-environment (the environment promoted to)", EXIT_INVALID
        )
    run = connection.run(work)
    plan, outcomes = run.plan, run.outcomes
    failed = [o for o in outcomes if not o.ok]
    unsigned = [r for r in run.signatures if not r.ok]
    recorded = _record(plan, outcomes, options) if options.confirm else 0
    if options.output == "json":
        document: dict[str, Any] = plan.as_dict()
        document["warnings"] = [str(w) for w in warnings]
        document["confirm"] = options.confirm
        document["shard"] = {"index": options.shard_index or 0, "count": options.shard_count}
        if options.confirm:
            document["results"] = [o.as_dict() for o in outcomes]
        if trust is not None:
            document["validation"] = [v.as_dict() for v in run.validations.values()]
        if options.vuln_threshold:
            document["vulnerabilities"] = {
                "threshold": options.vuln_threshold,
                "scanner": options.vuln_scanner,
                "images": [v.as_dict() for v in run.vulns.values()],
            }
        if signer is not None:
            document["signing"] = {
                "key_id": run.key_id,
                "results": [r.as_dict() for r in run.signatures],
            }
        print_json(document)
    elif options.output == "text":
        _report_text(plan, outcomes, options, total)
        _report_signing(run, options)
        _report_vulnerabilities(run, options)
        if options.catalog_url and options.confirm:
            print(f"recorded {recorded} image(s) in the catalog ({options.catalog_environment})")
    else:
        fail(f"a plan is written as text or json, not {options.output}", EXIT_INVALID)
    if plan.refused or plan.unreadable or failed or run.unsigned or run.gated or unsigned:
        raise SystemExit(EXIT_FAILED)


@dataclass
class _Run:
    """What one ``imgctl cip`` run found and did: plan, validation, outcomes, signatures."""

    plan: Plan
    outcomes: list[EdgeOutcome] = field(default_factory=list)
    # Source image (REPO@DIGEST) -> its verdict, for the sources the plan would promote.
    validations: dict[str, Validation] = field(default_factory=dict)
    signatures: list[SignResult] = field(default_factory=list)
    key_id: str | None = None
    # Source image (REPO@DIGEST) -> the vulnerability gate's verdict.
    vulns: dict[str, VulnVerdict] = field(default_factory=dict)

    @property
    def unsigned(self) -> set[str]:
        """Sources refused by validation: their edges are not promoted."""
        return {image for image, verdict in self.validations.items() if not verdict.verified}

    @property
    def gated(self) -> set[str]:
        """Sources the vulnerability gate refused or could not judge: not promoted."""
        return {image for image, verdict in self.vulns.items() if not verdict.ok}

    def refusals(self) -> list[EdgeOutcome]:
        """A failed outcome for each edge whose source was refused (the others went on)."""
        from imgctl.promotion.plan import EdgeOutcome

        refused = []
        for action in self.plan.work():
            source = _source(action.edge)
            verdict = self.validations.get(source)
            gate = self.vulns.get(source)
            if verdict is not None and not verdict.verified:
                error = f"not promoted: {verdict.image}: {verdict.reason}"
            elif gate is not None and not gate.ok:
                error = f"not promoted: {gate.image}: vulnerability gate: {gate.reason}"
            else:
                continue
            refused.append(EdgeOutcome(action.edge, action.action, False, error))
        return refused


def _sign_flag(value: str | None) -> bool | None:
    """--sign's value, read as Go's strconv.ParseBool reads kpromo's (None: not given)."""
    if value is None:
        return None
    if value.strip() in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value.strip() in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    fail(f"--sign takes true or false, not {value!r}", EXIT_INVALID)


def _source(edge: Edge) -> str:
    return f"{edge.source_repository}@{edge.digest}"


def _signing(options: CipOptions) -> tuple[Signer | None, TrustPolicy | None]:
    """The signer of --sign-key and the policy of --verify-key/--certificate-*; exit 2 if bad.

    Loaded before any registry is read: a bad key copies and signs nothing.
    """
    import os

    sign = options.sign if options.sign is not None else options.sign_key is not None
    if sign and not options.sign_key:
        fail("--sign needs --sign-key KEY: imgctl cip signs with a key", EXIT_INVALID)
    signer = trust = None
    if sign and options.sign_key:
        from imgctl.trust import load_signer

        try:
            signer = load_signer(options.sign_key, environ=os.environ)
        except ImgctlError as exc:
            fail(f"--sign-key: {exc}", EXIT_INVALID)
    # The same keyless flags, read the same way, as imgctl verify's.
    from imgctl.trust import TrustPolicy, keyless_identity, load_public_key

    try:
        keyless = keyless_identity(
            options.certificate_identity,
            options.certificate_oidc_issuer,
            certificate_chain=options.certificate_chain,
            trusted_root=options.trusted_root,
            rekor_public_keys=options.rekor_public_keys,
        )
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    try:
        keys = tuple(load_public_key(ref, environ=os.environ) for ref in options.verify_keys)
    except ImgctlError as exc:
        fail(f"--verify-key: {exc}", EXIT_INVALID)
    if keys or keyless is not None:
        trust = TrustPolicy(keys=keys, keyless=(keyless,) if keyless is not None else ())
    return signer, trust


async def _validate(
    client: RegistryClient, run: _Run, trust: TrustPolicy, options: CipOptions
) -> None:
    """The validate phase (kpromo): the sources the plan would promote must be signed."""
    from imgctl.oci import Reference
    from imgctl.promotion.signing import validate

    sources = [Reference.parse(_source(a.edge)) for a in run.plan.work()]
    run.validations = await validate(client, sources, trust, max_ops=options.max_signature_ops)


def _scanner(options: CipOptions) -> Scanner | None:
    """--vuln-scanner's command, checked before any registry is read; exit 2 if unusable."""
    if options.vuln_scanner is None:
        return None
    if not options.vuln_threshold:
        fail(
            "--vuln-scanner needs --vuln-severity-threshold 1..5 (0 turns the gate off)",
            EXIT_INVALID,
        )
    from imgctl.promotion.vulns import scanner_command

    try:
        return scanner_command(options.vuln_scanner, timeout=options.vuln_scanner_timeout)
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)


async def _scan_vulnerabilities(
    client: RegistryClient, run: _Run, scanner: Scanner | None, options: CipOptions
) -> None:
    """The vulnerability gate (kpromo's validate phase): sources the plan would promote."""
    from imgctl.oci import Reference
    from imgctl.promotion.vulns import scan_edges

    sources = [Reference.parse(_source(a.edge)) for a in run.plan.work()]
    run.vulns = await scan_edges(client, sources, options.vuln_threshold, scanner)


def _report_vulnerabilities(run: _Run, options: CipOptions) -> None:
    """Each scanned source's counts by severity; refusals and errors on stderr."""
    if not options.vuln_threshold or not run.vulns:
        return
    from imgctl.promotion.vulns import severity_label

    verdicts = list(run.vulns.values())
    refused = [v for v in verdicts if v.status == "refused"]
    errors = [v for v in verdicts if v.status == "error"]
    print(
        f"vulnerability gate (at or above {severity_label(options.vuln_threshold)}): "
        f"{len(verdicts)} source(s) scanned, {len(verdicts) - len(refused) - len(errors)} "
        f"passed, {len(refused)} refused, {len(errors)} could not be judged"
    )
    for verdict in verdicts:
        highest = f", highest {verdict.highest.name}" if verdict.highest is not None else ""
        reports = len(verdict.reports)
        print(
            f"  {verdict.status:8}  {verdict.image}: {verdict.count_text()}{highest} "
            f"({reports} report{'' if reports == 1 else 's'})"
        )
    if not options.confirm:
        for verdict in refused + errors:
            print(f"refused   {verdict.image}: {verdict.reason}", file=sys.stderr)


async def _sign(
    client: RegistryClient,
    run: _Run,
    signer: Signer,
    manifests: list[Manifest],
    options: CipOptions,
) -> None:
    """The sign phase (kpromo): each promoted digest once, in its primary registry only."""
    import asyncio

    from imgctl.promotion.signing import primary_destinations, sign_images, signing_targets

    run.key_id = (await asyncio.to_thread(signer.public_key)).key_id
    promoted = [o.edge for o in run.outcomes if o.ok]
    targets = signing_targets(promoted, primary_destinations(manifests))
    run.signatures = await sign_images(client, targets, signer, max_ops=options.max_signature_ops)


def _report_signing(run: _Run, options: CipOptions) -> None:
    """The validate and sign phases in text: refusals and failures on stderr."""
    refused = [v for v in run.validations.values() if not v.verified]
    if run.validations:
        print(
            f"signatures checked on {len(run.validations)} source(s): "
            f"{len(run.validations) - len(refused)} verified, {len(refused)} refused"
        )
    if not options.confirm:
        for verdict in refused:
            print(f"refused   {verdict.image}: {verdict.reason}", file=sys.stderr)
    if run.key_id is None:
        return
    done = [r for r in run.signatures if r.status == "signed"]
    already = [r for r in run.signatures if r.status == "already-signed"]
    failed = [r for r in run.signatures if not r.ok]
    print(
        f"signed {len(done)} of {len(run.signatures)} promoted digest(s) in their primary "
        f"registry with key {run.key_id[:12]} ({len(already)} already signed, "
        f"{len(failed)} failed)"
    )
    for result in done:
        print(f"  signed    {result.image}")
    for result in failed:
        print(f"unsigned  {result.image}: {result.error}", file=sys.stderr)
    if failed:
        print(
            f"imgctl: error: {len(failed)} promoted digest(s) not signed (nothing half-written); "
            "sign each with `imgctl sign IMAGE --key KEY` (a rerun finds them promoted and signs "
            "only what it promotes)",
            file=sys.stderr,
        )


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
        f"{summary['tag_move']} tag moves, {summary['referrers']} referrers to copy; "
        f"{plan.requests} registry requests"
    )
    for action in plan.actions:
        if action.action == "present" and not action.referrer_lines():
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
        elif action.action == "present":
            line = f"  present   {where} ({edge.digest}), not all its referrers"
        else:
            line = f"  copy      {edge.source_repository}@{edge.digest} -> {where}"
        print(line)
        for referrer in action.referrer_lines():
            print(referrer)
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
