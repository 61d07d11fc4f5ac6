"""``imgctl cip``: kpromo-compatible declarative promotion, and snapshots.

A promotion runs kpromo's phases in order through ``imgctl.promotion.pipeline`` (docs/cip.md):
setup (manifests, shard, keys), plan, provenance (verify-if-present: every attestation of a
source must verify with ``--verify-key`` / the keyless flags; ``--require-provenance``),
validate (``--verify-key`` / ``--certificate-identity``: the sources must be signed;
``--vuln-severity-threshold``: the vulnerability gate), promote, sign (``--sign-key``: each
promoted digest in its primary registry) and attest (a promotion attestation for each). Without
``--confirm`` the run stops after validate, with ``--parse-only`` after setup; an edge failing a
phase skips the later ones, the others go on. ``cip replicate-signatures`` brings the
signatures to the mirrors (docs/signing.md).

Exit status (docs/cip.md): 0 when every phase succeeded for every edge (lost images and
sources without attestations are warnings); 1 when tag moves were refused, a registry could not
be read, or an edge failed a phase; 2 for invalid manifests or flags.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import EXIT_FAILED, EXIT_INVALID, fail, warn
from imgctl.cli._flags import BurstOpt, Connection, per_second, registry_command
from imgctl.cli._output import print_document
from imgctl.cli._registry import Referrers, ReferrersOpt
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.oci import Reference
    from imgctl.promotion.manifests import Edge, Manifest, ManifestWarning
    from imgctl.promotion.pipeline import Phase, PhaseResult, Pipeline
    from imgctl.promotion.plan import EdgeAction, EdgeOutcome, Plan
    from imgctl.promotion.provenance import AttestResult, ProvenanceVerdict
    from imgctl.promotion.replicate import Replication
    from imgctl.promotion.signing import SignResult, Validation
    from imgctl.promotion.vulns import Scanner, VulnVerdict
    from imgctl.remote import RegistryClient, RequestBudget
    from imgctl.trust import Signer, TrustPolicy

__all__ = ["app"]

app = typer.Typer(
    name="cip",
    help="Promote what kpromo manifests list (dry run unless --confirm), or write snapshots.",
    invoke_without_command=True,
)
_SIGNING = "Signing and provenance (kpromo's provenance, validate, sign and attest phases)"
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


# What cip and cip replicate-signatures read: kpromo's two manifest forms.
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest", help="A plain promoter manifest (registries + images).", dir_okay=False
    ),
]
ThinManifestDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--thin-manifest-dir",
        help="A thin manifest tree: images/<x>/images.yaml and "
        "manifests/<x>/promoter-manifest.yaml.",
        file_okay=False,
    ),
]


@app.callback()
@registry_command
def cip(
    context: typer.Context,
    connection: Connection,
    manifest: ManifestOpt = None,
    thin_manifest_dir: ThinManifestDirOpt = None,
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
            help="Plan: text, json or yaml (the same document); snapshot: yaml or csv.",
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
    attest: Annotated[
        str | None,
        typer.Option(
            "--attest",
            metavar="true|false",
            help="Write a promotion attestation (in-toto, SLSA provenance v1, signed with "
            "--sign-key) for each promoted digest in its primary registry: as --sign unless "
            "given.",
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
    require_provenance: Annotated[
        bool,
        typer.Option(
            "--require-provenance",
            help="Refuse sources without a valid SLSA provenance attestation (default: "
            "verify-if-present: an attestation must verify, none is a warning).",
            rich_help_panel=_SIGNING,
        ),
    ] = False,
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
            attest=_sign_flag(attest, "--attest"),
            require_provenance=require_provenance,
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
    manifest: ManifestOpt = None,
    thin_manifest_dir: ThinManifestDirOpt = None,
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
        CipOutput,
        typer.Option("--output", "-o", case_sensitive=False, help="text, json or yaml."),
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
    if output is CipOutput.csv:
        fail("replicate-signatures writes text, json or yaml, not csv", EXIT_INVALID)
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
    if output is not CipOutput.text:
        print_document({"confirm": confirm, **done.as_dict()}, output)
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
    attest: bool | None = None  # None: attest when signing
    require_provenance: bool = False
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
    """Write a snapshot, or run the promotion pipeline (parse, plan ... attest)."""
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

    if options.manifest_based_snapshot_of:
        from imgctl.promotion.snapshot import manifest_snapshot

        manifests, _ = _load(options)
        try:
            inventory = manifest_snapshot(manifests, options.manifest_based_snapshot_of)
        except ImgctlError as exc:
            fail(str(exc), EXIT_INVALID)
        _print_snapshot(inventory, options.output)
        return
    _promote(connection, options)


@dataclass(frozen=True)
class _Setup:
    """What the setup phase read: manifests, this shard's edges, keys, trust, the scanner."""

    manifests: list[Manifest]
    warnings: list[ManifestWarning]
    edges: list[Edge]
    total: int  # edges in all shards
    signer: Signer | None = None
    trust: TrustPolicy | None = None
    scanner: Scanner | None = None
    sign: bool = False  # the sign phase runs (with --confirm)
    attest: bool = False  # the attest phase runs (with --confirm)


def _phases() -> list[Phase]:
    """Kpromo's phases in order, each with the request budget share its requests draw from.

    The vulnerability gate (promotion.vulns, --vuln-severity-threshold) runs inside validate,
    after the signatures: a dry run, which stops after validate, shows its verdicts too.
    """
    from imgctl.promotion.pipeline import Phase

    return [
        Phase("setup"),
        Phase("plan"),
        Phase("provenance"),
        Phase("validate"),
        Phase("promote"),
        Phase("sign", share="signing"),
        Phase("attest", share="signing"),
    ]


def _promote(connection: Connection, options: CipOptions) -> None:
    """Kpromo's pipeline: setup, plan, provenance, validate, promote, sign, attest."""
    from imgctl.cli._phases import phase_display
    from imgctl.promotion.pipeline import PhaseResult, Pipeline

    if options.output not in ("text", "json", "yaml"):
        fail(f"a plan is written as text, json or yaml, not {options.output}", EXIT_INVALID)
    stop_after, stop_reason = None, ""
    if options.parse_only:
        stop_after, stop_reason = "setup", "--parse-only: stopped after parsing"
    elif not options.confirm:
        stop_after, stop_reason = "validate", "dry run (add --confirm to promote)"
    with phase_display(options.output) as show:
        pipeline = Pipeline(
            _phases(),
            show,
            label=_edge_label,
            stop_after=stop_after,
            stop_reason=stop_reason,
        )
        pipeline.begin("setup")
        try:
            setup = _setup(options)
        except SystemExit:  # the reason is already on stderr
            pipeline.end("setup", PhaseResult(error="invalid manifests or flags"))
            raise
        pipeline.end(
            "setup",
            PhaseResult(_setup_summary(setup, options), warnings=[str(w) for w in setup.warnings]),
        )
        if options.parse_only:
            pipeline.skip_remaining()
            _report_parse(setup.manifests, setup.warnings, setup.edges, setup.total, options)
            return
        pipeline.budget = _budget(connection, setup, options)
        run = _Run(pipeline, setup, options)
        connection.run(run.go, limiter=pipeline.budget)
    _report(run, options)
    if pipeline.failed:
        raise SystemExit(EXIT_FAILED)


def _edge_label(edge: Any) -> str:
    return str(edge.destination)


def _setup(options: CipOptions) -> _Setup:
    """The setup phase: parse the manifests, pick the shard's edges, load keys; exit 2 if bad.

    Keys are loaded before any registry is read: a bad key copies and signs nothing.
    """
    from imgctl.promotion.manifests import edges_of
    from imgctl.promotion.plan import select_shard

    manifests, warnings = _load(options)
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
    if options.parse_only:  # parsing only: no key is read
        return _Setup(manifests, warnings, edges, total)
    signer, trust, sign, attest = _signing(options)
    if options.require_provenance and trust is None:
        fail(
            "--require-provenance needs --verify-key or --certificate-identity to verify the "
            "attestations with",
            EXIT_INVALID,
        )
    scanner = _scanner(options)
    if options.catalog_url and not options.catalog_environment:
        fail(
            "--catalog-url needs --catalog-environment (the environment promoted to)", EXIT_INVALID
        )
    return _Setup(manifests, warnings, edges, total, signer, trust, scanner, sign, attest)


def _setup_summary(setup: _Setup, options: CipOptions) -> str:
    images = sum(len(m.images) for m in setup.manifests)
    shard = ""
    if len(setup.edges) != setup.total:
        shard = f", {len(setup.edges)} in shard {options.shard_index or 0} of {options.shard_count}"
    return f"{len(setup.manifests)} manifest(s), {images} image(s), {setup.total} edge(s){shard}"


def _budget(connection: Connection, setup: _Setup, options: CipOptions) -> RequestBudget:
    """--rate-limit as kpromo splits it: 70 % promotion, 30 % signing, when the run signs."""
    from imgctl.promotion.pipeline import KPROMO_BUDGET
    from imgctl.remote import RequestBudget

    signs = options.confirm and (setup.sign or setup.attest)
    weights = KPROMO_BUDGET if signs else {"promotion": 1.0}
    return RequestBudget(connection.rate_limit, connection.burst, weights)


class _Run:
    """One ``imgctl cip`` run's phases after setup, and what each found and did."""

    def __init__(self, pipeline: Pipeline, setup: _Setup, options: CipOptions) -> None:
        self.pipeline = pipeline
        self.setup = setup
        self.options = options
        self._client: RegistryClient | None = None
        self._plan: Plan | None = None
        self.outcomes: list[EdgeOutcome] = []
        # Source image (REPO@DIGEST) -> its verdict, for the sources the plan would promote.
        self.provenance: dict[str, ProvenanceVerdict] = {}
        self.validations: dict[str, Validation] = {}
        self.vulns: dict[str, VulnVerdict] = {}
        self.signatures: list[SignResult] | None = None  # None: the sign phase did not run
        self.attestations: list[AttestResult] | None = None  # None: attest did not run
        self.key_id: str | None = None
        self.builder: str | None = None
        self._promoted: tuple[datetime, datetime] | None = None  # the promote phase's span

    @property
    def client(self) -> RegistryClient:
        """The registry client of the run (the phases run inside ``go``)."""
        assert self._client is not None
        return self._client

    @property
    def plan(self) -> Plan:
        """The plan phase's plan."""
        assert self._plan is not None
        return self._plan

    async def go(self, client: RegistryClient) -> _Run:
        """Run the phases after setup, in order; each edge stops at its first failure."""
        self._client = client
        self.pipeline.requests = lambda: client.stats.requests
        steps: dict[str, tuple[Callable[[], str | None], Callable[[], Awaitable[PhaseResult]]]]
        steps = {
            "plan": (lambda: None, self._plan_phase),
            "provenance": (lambda: None, self._provenance_phase),
            "validate": (self._validate_skip, self._validate_phase),
            "promote": (self._promote_skip, self._promote_phase),
            "sign": (self._sign_skip, self._sign_phase),
            "attest": (self._attest_skip, self._attest_phase),
        }
        for name in self.pipeline.phases:
            if name == "setup":
                continue
            skip, work = steps[name]
            await self.pipeline.run(
                name, work, skip=None if self.pipeline.stops_before(name) else skip()
            )
        return self

    def _work(self) -> list[EdgeAction]:
        """The plan's work whose edges have not failed yet."""
        return [a for a in self.plan.work() if self.pipeline.alive(a.edge)]

    def _sources(self, actions: list[EdgeAction]) -> dict[Edge, Reference]:
        from imgctl.oci import Reference

        parsed: dict[str, Reference] = {}
        return {
            a.edge: parsed.setdefault(_source(a.edge), Reference.parse(_source(a.edge)))
            for a in actions
        }

    # ------------------------------------------------------------------ plan

    async def _plan_phase(self) -> PhaseResult:
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.plan import make_plan

        plan = self._plan = await make_plan(
            self.client,
            self.setup.edges,
            allow_tag_moves=self.options.allow_tag_moves,
            referrers=self.options.referrers,  # type: ignore[arg-type]
        )
        failed: dict[Hashable, str] = {a.edge: f"unreadable: {a.error}" for a in plan.unreadable}
        for action in plan.refused:
            failed[action.edge] = (
                f"tag move refused: the tag points at {action.current} (--allow-tag-moves)"
            )
        warnings = [
            f"lost: {a.edge.destination}: {a.edge.digest} is not in {a.edge.source_repository}"
            for a in plan.actions
            if a.action == "lost" and not a.error
        ]
        s = plan.summary()
        return PhaseResult(
            f"{s['edges']} edge(s): {s['present']} present, {s['copy']} to copy, "
            f"{s['add_tag']} to tag, {s['lost']} lost, {s['tag_move']} tag move(s), "
            f"{s['referrers']} referrer(s) to copy",
            failed,
            warnings,
        )

    # ------------------------------------------------------------------ provenance

    async def _provenance_phase(self) -> PhaseResult:
        """Verify-if-present: each source's attestations must verify; none is a warning."""
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.provenance import check_provenance

        actions = self._work()
        sources = self._sources(actions)
        self.provenance = verdicts = await check_provenance(
            self.client,
            sources.values(),
            self.setup.trust,
            require=self.options.require_provenance,
            without_attestations=_without_attestations(self.plan, sources),
            max_ops=self.options.max_signature_ops,
        )
        failed: dict[Hashable, str] = {}
        for edge, source in sources.items():
            verdict = verdicts[str(source)]
            if not verdict.ok:
                failed[edge] = f"{verdict.image}: provenance: {verdict.reason}"
        counts = Counter(v.status for v in verdicts.values())
        return PhaseResult(
            f"{len(verdicts)} source(s): {counts['verified']} verified, "
            f"{counts['absent']} without attestation, {counts['unverified']} not verifiable, "
            f"{len(verdicts) - sum(counts[k] for k in ('verified', 'absent', 'unverified'))} "
            "refused",
            failed,
            [f"{v.image}: {v.reason}" for v in verdicts.values() if v.warning],
        )

    # ------------------------------------------------------------------ validate

    def _validate_skip(self) -> str | None:
        if self.setup.trust is None and not self.options.vuln_threshold:
            return "no --verify-key, --certificate-identity or --vuln-severity-threshold"
        return None

    async def _validate_phase(self) -> PhaseResult:
        """The sources must be signed (--verify-key ...) and pass the vulnerability gate."""
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.signing import validate

        sources = self._sources(self._work())
        failed: dict[Hashable, str] = {}
        summary = []
        if self.setup.trust is not None:
            self.validations = await validate(
                self.client,
                sources.values(),
                self.setup.trust,
                max_ops=self.options.max_signature_ops,
            )
            for edge, source in sources.items():
                verdict = self.validations[str(source)]
                if not verdict.verified:
                    failed[edge] = f"{verdict.image}: {verdict.reason}"
            refused = sum(1 for v in self.validations.values() if not v.verified)
            summary.append(
                f"signatures of {len(self.validations)} source(s): "
                f"{len(self.validations) - refused} verified, {refused} refused"
            )
        if self.options.vuln_threshold:
            from imgctl.promotion.vulns import scan_edges

            self.vulns = await scan_edges(
                self.client,
                sources.values(),
                self.options.vuln_threshold,
                self.setup.scanner,
            )
            for edge, source in sources.items():
                gate = self.vulns[str(source)]
                if not gate.ok and edge not in failed:
                    failed[edge] = f"{gate.image}: vulnerability gate: {gate.reason}"
            gated = sum(1 for v in self.vulns.values() if not v.ok)
            summary.append(
                f"vulnerability gate on {len(self.vulns)} source(s): "
                f"{len(self.vulns) - gated} passed, {gated} refused"
            )
        return PhaseResult("; ".join(summary), failed)

    # ------------------------------------------------------------------ promote

    def _promote_skip(self) -> str | None:
        if self.plan.refused:
            return (
                f"{len(self.plan.refused)} tag move(s) refused: nothing promoted, as in kpromo "
                "(--allow-tag-moves moves them)"
            )
        return None

    async def _promote_phase(self) -> PhaseResult:
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.plan import execute

        allowed = [a for a in self.plan.actions if self.pipeline.alive(a.edge)]
        started = datetime.now(UTC)
        outcomes = await execute(
            self.client, replace(self.plan, actions=allowed), concurrency=self.options.jobs
        )
        self._promoted = (started, datetime.now(UTC))
        self.outcomes = outcomes + self._refusals()
        failed: dict[Hashable, str] = {o.edge: o.error or "failed" for o in outcomes if not o.ok}
        done = len(outcomes) - len(failed)
        copied = sum(o.bytes_copied for o in outcomes)
        return PhaseResult(
            f"promoted {done} of {len(outcomes)} edge(s) ({copied / (1 << 20):.1f} MiB copied)",
            failed,
        )

    def _refusals(self) -> list[EdgeOutcome]:
        """A failed outcome for each edge a phase before promote refused (the others went on)."""
        from imgctl.promotion.plan import EdgeOutcome

        refused = []
        for action in self.plan.work():
            failure = self.pipeline.failure(action.edge)
            if failure is not None and failure[0] != "plan":
                error = f"not promoted: {failure[1]}"
                refused.append(EdgeOutcome(action.edge, action.action, False, error))
        return refused

    def _targets(self) -> dict[str, tuple[Reference, list[Edge]]]:
        """Promoted digests to sign and attest: in primary registries, tagged edges only.

        kpromo signs (and attests) neither tagless edges (children of an index, listed by
        digest) nor mirrors; an edge that failed a phase is left out.
        """
        from imgctl.promotion.signing import is_primary, primary_destinations

        primaries = primary_destinations(self.setup.manifests)
        targets: dict[str, tuple[Reference, list[Edge]]] = {}
        for outcome in self.outcomes:
            edge = outcome.edge
            if not outcome.ok or not self.pipeline.alive(edge) or edge.tag is None:
                continue
            if not is_primary(edge, primaries):
                continue
            from imgctl.oci import Reference

            ref = Reference.parse(f"{edge.destination_repository}@{edge.digest}")
            targets.setdefault(str(ref), (ref, []))[1].append(edge)
        return targets

    async def _key(self) -> str:
        import asyncio

        assert self.setup.signer is not None
        if self.key_id is None:
            self.key_id = (await asyncio.to_thread(self.setup.signer.public_key)).key_id
        return self.key_id

    # ------------------------------------------------------------------ sign

    def _sign_skip(self) -> str | None:
        if self.setup.sign:
            return None
        return "--sign=false" if self.options.sign_key else "no --sign-key"

    async def _sign_phase(self) -> PhaseResult:
        """Each promoted digest once, in its primary registry only (kpromo)."""
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.signing import sign_images

        assert self.setup.signer is not None
        targets = self._targets()
        key_id = await self._key()
        self.signatures = results = await sign_images(
            self.client,
            [ref for ref, _ in targets.values()],
            self.setup.signer,
            max_ops=self.options.max_signature_ops,
        )
        failed: dict[Hashable, str] = {}
        for result in results:
            if not result.ok:
                for edge in targets[result.image][1]:
                    failed[edge] = f"{result.image}: not signed: {result.error}"
        already = sum(1 for r in results if r.status == "already-signed")
        signed = sum(1 for r in results if r.status == "signed")
        return PhaseResult(
            f"signed {signed} of {len(results)} promoted digest(s) with key {key_id[:12]} "
            f"({already} already signed)",
            failed,
        )

    # ------------------------------------------------------------------ attest

    def _attest_skip(self) -> str | None:
        if self.setup.attest:
            return None
        if not self.options.sign_key:
            return "no --sign-key"
        return "--attest=false" if self.options.attest is False else "--sign=false"

    async def _attest_phase(self) -> PhaseResult:
        """A promotion attestation for each promoted digest, in its primary registry."""
        from imgctl.oci import Reference
        from imgctl.promotion.pipeline import PhaseResult
        from imgctl.promotion.provenance import attest_promotions, promotion_builder
        from imgctl.trust import PromotionFacts

        assert self.setup.signer is not None
        targets = self._targets()
        self.builder = builder = promotion_builder(await self._key())
        now = datetime.now(UTC)
        started, finished = self._promoted or (now, now)
        facts = [
            PromotionFacts(
                source=Reference.parse(_source(edges[0])),
                destination=ref,
                builder=builder,
                started=started,
                finished=finished,
            )
            for ref, edges in targets.values()
        ]
        self.attestations = results = await attest_promotions(
            self.client, facts, self.setup.signer, max_ops=self.options.max_signature_ops
        )
        failed: dict[Hashable, str] = {}
        for result in results:
            if not result.ok:
                for edge in targets[result.image][1]:
                    failed[edge] = f"{result.image}: not attested: {result.error}"
        already = sum(1 for r in results if r.status == "already-attested")
        attested = sum(1 for r in results if r.status == "attested")
        return PhaseResult(
            f"attested {attested} of {len(results)} promoted digest(s) with key "
            f"{self.key_id[:12] if self.key_id else '?'} ({already} already attested)",
            failed,
        )


def _without_attestations(plan: Plan, sources: dict[Edge, Reference]) -> set[str]:
    """Sources the plan's referrer listing shows to carry no attestation (no request needed).

    Only a plan that read every referrer (--referrers all) knows; a referrer of an unknown
    kind might be an attestation, so it is looked at.
    """
    if plan.referrers != "all":
        return set()
    carrying: set[str] = set()
    listed: set[str] = set()
    for action in plan.actions:
        source = sources.get(action.edge)
        if source is None:
            continue
        listed.add(str(source))
        for referrer in action.referrers:
            if str(referrer.subject) == action.edge.digest and referrer.kind in (
                "attestation",
                "referrer",
            ):
                carrying.add(str(source))
    return listed - carrying


def _report(run: _Run, options: CipOptions) -> None:
    """The run's report on stdout: one JSON document, or text."""
    plan, outcomes, setup = run.plan, run.outcomes, run.setup
    recorded = _record(plan, outcomes, options) if options.confirm else 0
    if options.output in ("json", "yaml"):
        document: dict[str, Any] = plan.as_dict()
        document["warnings"] = [str(w) for w in setup.warnings]
        document["confirm"] = options.confirm
        document["shard"] = {"index": options.shard_index or 0, "count": options.shard_count}
        if options.confirm:
            document["results"] = [o.as_dict() for o in outcomes]
        document["provenance"] = {
            "trusted": setup.trust is not None,
            "required": options.require_provenance,
            "results": [v.as_dict() for v in run.provenance.values()],
        }
        if setup.trust is not None:
            document["validation"] = [v.as_dict() for v in run.validations.values()]
        if options.vuln_threshold:
            document["vulnerabilities"] = {
                "threshold": options.vuln_threshold,
                "scanner": options.vuln_scanner,
                "images": [v.as_dict() for v in run.vulns.values()],
            }
        if setup.sign:
            document["signing"] = {
                "keyId": run.key_id,
                "results": [r.as_dict() for r in run.signatures or []],
            }
        if setup.attest:
            from imgctl.trust import PROMOTION_PREDICATE_TYPE

            document["attestation"] = {
                "builder": run.builder,
                "predicateType": PROMOTION_PREDICATE_TYPE,
                "results": [r.as_dict() for r in run.attestations or []],
            }
        document["phases"] = [
            {
                "phase": e.phase,
                "status": e.status,
                "duration": None if e.duration is None else round(e.duration, 3),
            }
            for e in run.pipeline.events
            if e.status != "started"
        ]
        document["failed"] = [
            {"edge": _edge_label(edge), "phase": phase, "reason": reason}
            for edge, (phase, reason) in run.pipeline.failures.items()
        ]
        print_document(document, options.output)
        return
    _report_text(plan, outcomes, options, setup.total)
    _report_provenance(run, options)
    _report_signing(run, options)
    _report_vulnerabilities(run, options)
    _report_attestations(run)
    if options.catalog_url and options.confirm:
        print(f"recorded {recorded} image(s) in the catalog ({options.catalog_environment})")


def _sign_flag(value: str | None, flag: str = "--sign") -> bool | None:
    """A --sign/--attest value, read as Go's strconv.ParseBool reads kpromo's (None: not given)."""
    if value is None:
        return None
    if value.strip() in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value.strip() in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    fail(f"{flag} takes true or false, not {value!r}", EXIT_INVALID)


def _source(edge: Edge) -> str:
    return f"{edge.source_repository}@{edge.digest}"


def _signing(options: CipOptions) -> tuple[Signer | None, TrustPolicy | None, bool, bool]:
    """--sign-key's signer, --verify-key/--certificate-*'s policy, sign?, attest?; exit 2 if bad.

    Loaded before any registry is read: a bad key copies and signs nothing. --sign defaults to
    true when --sign-key is given (kpromo), --attest to what --sign is.
    """
    import os

    sign = options.sign if options.sign is not None else options.sign_key is not None
    attest = options.attest if options.attest is not None else sign
    if sign and not options.sign_key:
        fail("--sign needs --sign-key KEY: imgctl cip signs with a key", EXIT_INVALID)
    if attest and not options.sign_key:
        fail("--attest needs --sign-key KEY: attestations are signed with it", EXIT_INVALID)
    signer = trust = None
    if (sign or attest) and options.sign_key:
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
    return signer, trust, sign, attest


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
    if run.signatures is None or run.key_id is None:
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


def _report_provenance(run: _Run, options: CipOptions) -> None:
    """The provenance phase in text: counts; warnings, and dry-run refusals, on stderr."""
    verdicts = list(run.provenance.values())
    if not verdicts:
        return
    refused = [v for v in verdicts if not v.ok]
    verified = sum(1 for v in verdicts if v.status == "verified")
    print(
        f"provenance checked on {len(verdicts)} source(s): {verified} verified, "
        f"{len(verdicts) - verified - len(refused)} without verified attestation (promoted "
        f"anyway: verify-if-present), {len(refused)} refused"
    )
    absent = [v.image for v in verdicts if v.status == "absent"]
    unverified = [v.image for v in verdicts if v.status == "unverified"]
    if absent:
        warn(
            f"no attestation on {len(absent)} source(s), promoted anyway (verify-if-present; "
            f"--require-provenance refuses them): {_some(absent)}"
        )
    if unverified:
        warn(
            f"attestations on {len(unverified)} source(s) not verified: no --verify-key or "
            f"--certificate-identity given: {_some(unverified)}"
        )
    if not options.confirm:
        for verdict in refused:
            print(f"refused   {verdict.image}: {verdict.reason}", file=sys.stderr)


def _some(images: list[str], shown: int = 5) -> str:
    """A few of ``images``, and how many more (-o json lists them all)."""
    more = len(images) - shown
    return ", ".join(images[:shown]) + (f" and {more} more (-o json lists all)" if more > 0 else "")


def _report_attestations(run: _Run) -> None:
    """The attest phase in text: what was attested; failures on stderr."""
    if run.attestations is None:
        return
    done = [r for r in run.attestations if r.status == "attested"]
    already = [r for r in run.attestations if r.status == "already-attested"]
    failed = [r for r in run.attestations if not r.ok]
    print(
        f"attested {len(done)} of {len(run.attestations)} promoted digest(s) in their primary "
        f"registry as {run.builder} ({len(already)} already attested, {len(failed)} failed)"
    )
    for result in done:
        print(f"  attested  {result.image} ({result.attestation})")
    for result in failed:
        print(f"unattested {result.image}: {result.error}", file=sys.stderr)
    if failed:
        print(
            f"imgctl: error: {len(failed)} promoted digest(s) without a promotion attestation "
            "(nothing half-written); a rerun finds them promoted and attests only what it "
            "promotes",
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
    if options.output in ("json", "yaml"):
        document = {
            "manifests": len(manifests),
            "images": images,
            "digests": digests,
            "edges": len(edges),
            "total": total,
            "warnings": [str(w) for w in warnings],
        }
        print_document(document, options.output)
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
