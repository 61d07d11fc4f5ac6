"""The vulnerability gate (kpromo's ``--vuln-severity-threshold``): no source above the line moves.

``scan_edges`` judges each source image (with digest) once, ``concurrency`` at a time, and never
raises for one image: every image gets a :class:`VulnVerdict`, so one bad report or one scanner
crash stops that image's edges only. An image is refused when any finding is at or above the
threshold, exactly as kpromo's ``ScanResult.ExceedsSeverity`` (highest >= threshold, on its
0 UNSPECIFIED .. 5 CRITICAL scale); a threshold of 0 turns the gate off, as kpromo's
``ScanEdges`` does, so this module is only called with 1..5.

Findings come from

* reports attached to the image in its own repository: cosign's ``sha256-<hex>.att`` tag and
  attestation referrers (DSSE envelopes, bare or in sigstore bundles) whose statement has the
  vulnerability predicate, and referrers whose artifact type is a report (SARIF, Trivy JSON,
  Grype JSON, or ``application/json`` holding one, as trivy-plugin-referrer attaches them);
* a configured scanner command (:class:`Scanner`), run without a shell with ``{ref}`` replaced
  by ``REPOSITORY@DIGEST``, bounded in time and output.

A report that cannot be read, or a scanner that fails, makes the verdict ``error``: the image is
not promoted (the gate cannot say it is clean), and the message names the image and the report
or scanner. Attestation signatures are not checked here: the gate reads what a report says;
whether its signer is trusted is the provenance phase's job. An image with no report and no
scanner passes with no findings, as kpromo's scanner returns none for an image it has no
occurrences of.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Final, Literal

from imgctl.errors import (
    DigestMismatchError,
    ImgctlError,
    InvalidManifestError,
    NotFoundError,
    UsageError,
    VulnerabilityReportError,
)
from imgctl.oci import Reference
from imgctl.oci.manifest import Descriptor, Manifest
from imgctl.promotion._vulnreports import (
    MAX_REPORT_BYTES,
    VULN_PREDICATE_TYPE,
    Finding,
    Report,
    ReportKind,
    Severity,
    bundle_envelope,
    detect,
    envelope_statement,
    load_json,
    parse_document,
    parse_report,
    statement_report,
)

if TYPE_CHECKING:
    from imgctl.remote import FetchedManifest, RegistryClient

__all__ = [
    "DEFAULT_SCANNER_TIMEOUT",
    "DEFAULT_SCAN_CONCURRENCY",
    "MAX_SCANNER_TIMEOUT",
    "REPORT_ARTIFACT_TYPES",
    "AttachedReport",
    "Finding",
    "Report",
    "Scanner",
    "Severity",
    "VulnVerdict",
    "attached_reports",
    "check_threshold",
    "judge",
    "run_scanner",
    "scan_edges",
    "scan_image",
    "scanner_command",
    "severity_label",
]

DEFAULT_SCANNER_TIMEOUT: Final = 300.0
MAX_SCANNER_TIMEOUT: Final = 24 * 3600.0
# Scanners such as Trivy take a CPU and hundreds of MiB each; registry reads are light.
DEFAULT_SCAN_CONCURRENCY: Final = 4
# cosign refuses more attestations than this on one image (pkg/cosign/fetch.go).
MAX_ATTESTATION_LAYERS: Final = 100
# The copy engine's bound on one digest's referrers (remote/_referrers.py MAX_PER_DIGEST).
MAX_REFERRERS: Final = 256
MAX_REPORT_LAYERS: Final = 16
# A refusal names this many vulnerabilities; the rest are counted.
_NAMED: Final = 5
_STDERR_TAIL: Final = 4096

DSSE_MEDIA_TYPE: Final = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_ARTIFACT_TYPE: Final = "application/vnd.in-toto+json"
BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
# Referrer artifact types holding a report, and how each is read. Trivy and Grype register no
# media type: these are the names found in use; application/json is trivy-plugin-referrer's
# (its cosign-vuln output), read only when the document is a report.
REPORT_ARTIFACT_TYPES: Final[Mapping[str, ReportKind]] = {
    "application/sarif+json": "sarif",
    "application/vnd.aquasec.trivy.report+json": "trivy",
    "application/vnd.anchore.grype+json": "grype",
    "application/json": "auto",
}
_EMPTY_MEDIA_TYPE: Final = "application/vnd.oci.empty.v1+json"


def severity_label(severity: Severity | int) -> str:
    """``HIGH (4)``: a severity as messages give it."""
    value = Severity(severity)
    return f"{value.name} ({value.value})"


def check_threshold(value: int) -> Severity:
    """The gate's threshold, 1..5; UsageError otherwise (0 turns the gate off: no scan at all)."""
    if isinstance(value, bool) or not 1 <= value <= 5:
        raise UsageError(
            f"vulnerability severity threshold {value!r} is outside 1..5",
            hint="1 MINIMAL, 2 LOW, 3 MEDIUM, 4 HIGH, 5 CRITICAL; 0 turns the gate off",
        )
    return Severity(value)


# ----------------------------------------------------------------------------- the scanner


@dataclass(frozen=True, slots=True)
class Scanner:
    """A scanner command: argv with ``{ref}`` in it, a time limit, an output limit."""

    template: str
    argv: tuple[str, ...]
    timeout: float = DEFAULT_SCANNER_TIMEOUT
    max_output: int = MAX_REPORT_BYTES

    @property
    def name(self) -> str:
        """The program's name, for messages."""
        return PurePath(self.argv[0]).name or self.argv[0]

    def command(self, image: str) -> list[str]:
        """The command for ``image``: ``{ref}`` replaced inside each argument, never re-split."""
        return [part.replace("{ref}", image) for part in self.argv]


def scanner_command(
    template: str, *, timeout: float = DEFAULT_SCANNER_TIMEOUT, max_output: int = MAX_REPORT_BYTES
) -> Scanner:
    """Parse ``--vuln-scanner``'s value (shell words, no shell); UsageError when unusable."""
    try:
        argv = tuple(shlex.split(template))
    except ValueError as exc:
        raise UsageError(
            f"--vuln-scanner {template[:200]!r} cannot be split into words: {exc}",
            hint="quote it as a shell would: 'trivy image --format json {ref}'",
        ) from None
    if not argv:
        raise UsageError("--vuln-scanner is empty", hint="e.g. 'trivy image --format json {ref}'")
    if not any("{ref}" in part for part in argv[1:]):
        raise UsageError(
            f"--vuln-scanner {template[:200]!r} has no {{ref}} argument",
            hint="{ref} is where the image (REPOSITORY@DIGEST) goes: "
            "'trivy image --format json {ref}'",
        )
    if not 0 < timeout <= MAX_SCANNER_TIMEOUT:
        raise UsageError(
            f"--vuln-scanner-timeout {timeout:g} is outside 0..{MAX_SCANNER_TIMEOUT:g} seconds"
        )
    return Scanner(template, argv, timeout, max_output)


def _size(count: int) -> str:
    return f"{count // (1 << 20)} MiB" if count >= 1 << 20 else f"{count} bytes"


class _Collector(asyncio.SubprocessProtocol):
    """A scanner's stdout (up to a limit) and the tail of its stderr, as they arrive."""

    def __init__(self, limit: int) -> None:
        loop = asyncio.get_running_loop()
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = b""
        self.overflow = False
        # Done: the process exited and stdout reached EOF, or stdout passed the limit.
        self.done: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._eof = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr = (self.stderr + data)[-_STDERR_TAIL:]
            return
        if self.overflow:
            return
        if len(self.stdout) + len(data) > self.limit:
            self.overflow = True
            self._finish()
            return
        self.stdout += data

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._eof = True
            if self.exited.done():
                self._finish()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        if self._eof:
            self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _kill(transport: asyncio.SubprocessTransport) -> None:
    """Kill the scanner and whatever it started (its own session and process group).

    Also once the scanner has exited: what it left running in its group goes too (the group's
    id is not handed out again while a member lives).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(transport.get_pid(), signal.SIGKILL)


def _last_words(stderr: bytes) -> str:
    """The end of a scanner's stderr as one printable line, for the error message."""
    text = stderr.decode("utf-8", "replace")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = ["".join(c if c.isprintable() else "?" for c in line) for line in lines if line]
    joined = " | ".join(lines[-3:])
    return joined if len(joined) <= 300 else "..." + joined[-297:]


async def run_scanner(scanner: Scanner, image: Reference) -> Report:
    """Run ``scanner`` on ``image`` (with digest) and read its JSON report.

    VulnerabilityReportError when it cannot start, fails, times out or prints no report.

    No shell; stdin is /dev/null. At the time limit, or once it has printed more than
    ``max_output`` bytes, the scanner and what it started are killed and its pipes closed, so
    a process that escaped its group and still holds them cannot keep the gate waiting.
    """
    name = scanner.name
    argv = scanner.command(str(image))
    loop = asyncio.get_running_loop()
    try:
        transport, collector = await loop.subprocess_exec(
            lambda: _Collector(scanner.max_output),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise VulnerabilityReportError(
            f"scanner {name!r} cannot be started for {image}: {exc.strerror or exc}",
            hint="--vuln-scanner's first word must be a program on PATH or a path to one",
        ) from None
    timed_out = False
    try:
        try:
            async with asyncio.timeout(scanner.timeout):
                await asyncio.shield(collector.done)
        except TimeoutError:
            timed_out = True
    finally:
        # Finished, cancelled (Ctrl-C) or stopped: no scanner outlives the gate.
        _kill(transport)
        transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.shield(collector.exited)
    if collector.overflow:
        raise VulnerabilityReportError(
            f"scanner {name!r} on {image} printed more than {_size(scanner.max_output)}; "
            "stopped it",
            hint="a scanner must print one JSON report on stdout (logs go to stderr)",
        )
    if timed_out:
        raise VulnerabilityReportError(
            f"scanner {name!r} on {image} did not finish in {scanner.timeout:g} s; stopped it",
            hint="raise --vuln-scanner-timeout, or check that the scanner reaches the registry",
        )
    code = transport.get_returncode()
    if code != 0:
        how = (
            f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        )
        said = _last_words(collector.stderr)
        raise VulnerabilityReportError(
            f"scanner {name!r} failed on {image}: {how}" + (f": {said}" if said else ""),
            hint="run the command by hand to see why; it must exit 0 and print its JSON report",
        )
    return parse_report(bytes(collector.stdout), f"the output of scanner {name!r} on {image}")


# ----------------------------------------------------------------------------- attached reports


@dataclass(frozen=True, slots=True)
class AttachedReport:
    """A report read from the registry (or the scanner's output) and where it came from."""

    where: str
    report: Report

    def describe(self) -> str:
        """``where: format from scanner (N findings)``."""
        n = len(self.report.findings)
        return f"{self.where}: {self.report.label} ({n} finding{'' if n == 1 else 's'})"


async def _read_blob(
    client: RegistryClient, image: Reference, desc: Descriptor, where: str
) -> bytes:
    """A layer's bytes, no more than its descriptor says (at most MAX_REPORT_BYTES), verified."""
    if desc.size > MAX_REPORT_BYTES:
        raise VulnerabilityReportError(
            f"{where} is {desc.size} bytes; refusing more than {_size(MAX_REPORT_BYTES)}"
        )
    chunks: list[bytes] = []
    total = 0
    try:
        async with client.open_blob(image, desc.digest) as response:
            async for chunk in response.aiter_raw():
                total += len(chunk)
                if total > desc.size:
                    raise VulnerabilityReportError(
                        f"{where} is larger than the {desc.size} bytes its descriptor says"
                    )
                chunks.append(chunk)
    except NotFoundError:
        raise VulnerabilityReportError(
            f"{where}: blob {desc.digest} is missing from {image.name}"
        ) from None
    data = b"".join(chunks)
    try:
        desc.digest.verify(data)
    except DigestMismatchError as exc:
        raise VulnerabilityReportError(f"{where}: {exc.message}") from None
    return data


def _manifest(fetched: FetchedManifest, where: str) -> Manifest:
    if not isinstance(fetched.parsed, Manifest):
        raise VulnerabilityReportError(f"{where} is an index, not an image manifest")
    return fetched.parsed


async def _attestation_layers(
    client: RegistryClient,
    image: Reference,
    manifest: Manifest,
    where: str,
    found: list[AttachedReport],
    errors: list[str],
) -> None:
    """The vulnerability statements among an attestation manifest's layers."""
    assert image.digest is not None
    if len(manifest.layers) > MAX_ATTESTATION_LAYERS:
        errors.append(
            f"{where} has {len(manifest.layers)} attestations; refusing more than "
            f"{MAX_ATTESTATION_LAYERS} (cosign's bound)"
        )
        return
    for index, layer in enumerate(manifest.layers):
        at = f"{where} layer {index}"
        bundled = layer.media_type.startswith(BUNDLE_PREFIX)
        if layer.media_type != DSSE_MEDIA_TYPE and not bundled:
            continue
        annotated = layer.annotations.get("predicateType")
        if annotated is not None and annotated != VULN_PREDICATE_TYPE:
            continue  # provenance, SBOMs...: not read at all
        try:
            document = load_json(await _read_blob(client, image, layer, at), at)
            envelope = bundle_envelope(document, at) if bundled else document
            if envelope is None:
                continue
            statement = envelope_statement(envelope, at)
            if statement is None:
                continue
            report = statement_report(statement, image.digest.hex, at)
        except VulnerabilityReportError as exc:
            errors.append(exc.message)
            continue
        if report is not None:
            found.append(AttachedReport(f"{at} (cosign vuln attestation)", report))


async def _report_layers(
    client: RegistryClient,
    image: Reference,
    manifest: Manifest,
    kind: ReportKind,
    where: str,
    found: list[AttachedReport],
    errors: list[str],
) -> None:
    """The reports a report referrer holds, one per layer."""
    layers = [d for d in manifest.layers if d.media_type != _EMPTY_MEDIA_TYPE]
    if len(layers) > MAX_REPORT_LAYERS:
        errors.append(f"{where} has {len(layers)} layers; refusing more than {MAX_REPORT_LAYERS}")
        return
    for index, layer in enumerate(layers):
        at = f"{where} layer {index}"
        try:
            document = load_json(await _read_blob(client, image, layer, at), at)
            if kind == "auto" and detect(document) is None:
                continue  # plain JSON that is no report: not ours to judge
            report = parse_document(document, at, kind)
        except VulnerabilityReportError as exc:
            errors.append(exc.message)
            continue
        found.append(AttachedReport(at, report))


async def _referrer(
    client: RegistryClient,
    image: Reference,
    desc: Descriptor,
    found: list[AttachedReport],
    errors: list[str],
) -> None:
    """Read one referrer of ``image`` if it can hold a vulnerability report."""
    artifact = desc.artifact_type or ""
    kind = REPORT_ARTIFACT_TYPES.get(artifact)
    attestation = artifact == IN_TOTO_ARTIFACT_TYPE or artifact.startswith(BUNDLE_PREFIX)
    if kind is None and not attestation:
        return
    if artifact.startswith(BUNDLE_PREFIX):
        annotated = desc.annotations.get("dev.sigstore.bundle.predicateType")
        content = desc.annotations.get("dev.sigstore.bundle.content")
        if (annotated is not None and annotated != VULN_PREDICATE_TYPE) or (
            content == "message-signature"
        ):
            return
    where = f"referrer {desc.digest.short} ({artifact})"
    try:
        fetched = await client.get_manifest(image.with_digest(desc.digest))
        manifest = _manifest(fetched, where)
    except (
        NotFoundError,
        InvalidManifestError,
        DigestMismatchError,
        VulnerabilityReportError,
    ) as exc:
        errors.append(f"{where} cannot be read: {exc.message}")
        return
    if manifest.subject is None or manifest.subject.digest != image.digest:
        said = manifest.subject.digest if manifest.subject else "none"
        errors.append(f"{where} has subject {said}, not {image.digest}")
        return
    if attestation:
        await _attestation_layers(client, image, manifest, where, found, errors)
    else:
        assert kind is not None
        await _report_layers(client, image, manifest, kind, where, found, errors)


async def attached_reports(
    client: RegistryClient, image: Reference
) -> tuple[list[AttachedReport], list[str]]:
    """Every vulnerability report attached to ``image`` (with digest), and what could not be read.

    One GET of the ``.att`` tag and one referrers listing (the API, else its fallback tag);
    then manifests and blobs only of attestations and report referrers.
    """
    digest = image.digest
    if digest is None:
        raise ValueError("attached_reports needs an image reference with a digest")
    found: list[AttachedReport] = []
    errors: list[str] = []
    att = image.with_tag(f"{digest.tag_form}.att")
    try:
        fetched = await client.get_manifest(att)
    except NotFoundError:
        fetched = None
    except (InvalidManifestError, DigestMismatchError) as exc:
        errors.append(f"{att.tag} cannot be read: {exc.message}")
        fetched = None
    if fetched is not None:
        try:
            manifest = _manifest(fetched, str(att.tag))
        except VulnerabilityReportError as exc:
            errors.append(exc.message)
        else:
            await _attestation_layers(client, image, manifest, str(att.tag), found, errors)
    try:
        referrers = await client.referrers(image)
    except NotFoundError:
        referrers = []
    except InvalidManifestError as exc:
        errors.append(f"the referrers of {digest} cannot be read: {exc.message}")
        referrers = []
    if len(referrers) > MAX_REFERRERS:
        errors.append(
            f"{digest} has {len(referrers)} referrers; refusing to read more than {MAX_REFERRERS}"
        )
        referrers = []
    for desc in referrers:
        await _referrer(client, image, desc, found, errors)
    return found, errors


# ----------------------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class VulnVerdict:
    """The gate's verdict on one source image: passed, refused (and why), or error (and why)."""

    image: str  # REPOSITORY@DIGEST
    threshold: Severity
    status: Literal["passed", "refused", "error"]
    # Distinct vulnerability ids by their highest severity in any report.
    counts: Mapping[Severity, int] = field(default_factory=dict)
    highest: Severity | None = None
    blocking: tuple[Finding, ...] = ()  # at or above the threshold, worst first
    reports: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the gate lets the image through."""
        return self.status == "passed"

    @property
    def total(self) -> int:
        """Distinct vulnerabilities found."""
        return sum(self.counts.values())

    def count_text(self) -> str:
        """``2 CRITICAL, 4 MEDIUM`` (worst first), or ``no vulnerabilities``."""
        parts = [
            f"{self.counts[s]} {s.name}"
            for s in sorted(self.counts, reverse=True)
            if self.counts.get(s)
        ]
        return ", ".join(parts) or "no vulnerabilities"

    @property
    def reason(self) -> str:
        """One line: why the image was refused, could not be judged, or passed."""
        line = severity_label(self.threshold)
        if self.status == "error":
            shown = "; ".join(self.errors[:3])
            more = len(self.errors) - 3
            return f"vulnerabilities cannot be judged: {shown}" + (
                f"; and {more} more" if more > 0 else ""
            )
        if self.status == "refused":
            assert self.highest is not None
            named = ", ".join(_finding_text(f) for f in self.blocking[:_NAMED])
            more = len(self.blocking) - _NAMED
            return (
                f"{len(self.blocking)} vulnerabilit{'y' if len(self.blocking) == 1 else 'ies'} "
                f"at or above {line} (highest {severity_label(self.highest)}): {named}"
                + (f" and {more} more" if more > 0 else "")
            )
        if not self.reports:
            return f"no vulnerability report found (nothing at or above {line})"
        return f"nothing at or above {line}: {self.count_text()}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: counts by severity name (all six), the blocking findings, the sources."""
        return {
            "image": self.image,
            "status": self.status,
            "threshold": int(self.threshold),
            "counts": {s.name: self.counts.get(s, 0) for s in sorted(Severity, reverse=True)},
            "highest": self.highest.name if self.highest is not None else None,
            "blocking": [
                {
                    "id": f.id,
                    "severity": f.severity.name,
                    "package": f.package,
                    "installed": f.installed,
                    "fixed": f.fixed,
                }
                for f in self.blocking
            ],
            "reports": list(self.reports),
            "errors": list(self.errors),
            "reason": self.reason,
        }


def _finding_text(finding: Finding) -> str:
    where = ""
    if finding.package:
        where = f", {finding.package}" + (f" {finding.installed}" if finding.installed else "")
    return f"{finding.id} ({finding.severity.name}{where})"


def judge(
    image: str,
    threshold: Severity | int,
    reports: Sequence[tuple[str, Report]],
    errors: Sequence[str] = (),
) -> VulnVerdict:
    """The verdict on ``image`` from its reports (where, report) and what could not be read.

    A vulnerability id seen in several reports (or for several packages) counts once, at the
    highest severity any of them gives it; any error makes the verdict ``error``.
    """
    line = Severity(threshold)
    worst: dict[str, Finding] = {}
    for _, report in reports:
        for finding in report.findings:
            seen = worst.get(finding.id)
            if seen is None or finding.severity > seen.severity:
                worst[finding.id] = finding
    counts: dict[Severity, int] = {}
    for finding in worst.values():
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    highest = max(counts) if counts else None
    blocking = tuple(
        sorted(
            (f for f in worst.values() if f.severity >= line),
            key=lambda f: (-f.severity, f.id),
        )
    )
    if errors:
        status: Literal["passed", "refused", "error"] = "error"
    elif blocking:
        status = "refused"
    else:
        status = "passed"
    described = tuple(AttachedReport(where, report).describe() for where, report in reports)
    return VulnVerdict(image, line, status, counts, highest, blocking, described, tuple(errors))


async def scan_image(
    client: RegistryClient,
    image: Reference,
    threshold: Severity | int,
    scanner: Scanner | None = None,
) -> VulnVerdict:
    """Judge one image (with digest): its attached reports, then the scanner's; never raises."""
    line = check_threshold(int(threshold))
    found: list[AttachedReport] = []
    errors: list[str] = []
    try:
        found, errors = await attached_reports(client, image)
    except ImgctlError as exc:  # the registry could not be read at all
        errors.append(f"its reports cannot be read: {exc}")
    if scanner is not None:
        try:
            report = await run_scanner(scanner, image)
        except VulnerabilityReportError as exc:
            errors.append(exc.message)
        else:
            found.append(AttachedReport(f"scanner {scanner.name}", report))
    return judge(str(image), line, [(f.where, f.report) for f in found], errors)


async def scan_edges(
    client: RegistryClient,
    images: Iterable[Reference],
    threshold: Severity | int,
    scanner: Scanner | None = None,
    *,
    concurrency: int = DEFAULT_SCAN_CONCURRENCY,
) -> dict[str, VulnVerdict]:
    """Judge each source image (with digest) once, keyed by ``str(image)``; never raises for one.

    ``threshold`` is 1..5 (kpromo's scale; 0 means no gate, so callers do not call this).
    """
    line = check_threshold(int(threshold))
    if concurrency < 1:
        raise UsageError(f"scan concurrency {concurrency} is below 1")
    unique = {str(image): image for image in images}
    gate = asyncio.Semaphore(concurrency)

    async def one(image: Reference) -> VulnVerdict:
        async with gate:
            return await scan_image(client, image, line, scanner)

    verdicts = await asyncio.gather(*(one(image) for image in unique.values()))
    return {verdict.image: verdict for verdict in verdicts}
