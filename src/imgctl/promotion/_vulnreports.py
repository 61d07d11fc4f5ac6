"""Vulnerability reports as the gate reads them: bytes in, findings on kpromo's scale out.

Formats: Trivy JSON (``trivy image --format json``, SchemaVersion 2), Grype JSON (``grype -o
json``), SARIF 2.1.0 (any scanner's; Trivy's and Grype's ``sarif`` output), cosign's
vulnerability scan record (predicate ``https://cosign.sigstore.dev/attestation/vuln/v1``, the
scanner's own report in ``scanner.result``; ``trivy --format cosign-vuln`` prints one) alone or
as an in-toto statement in a DSSE envelope, bare or inside a sigstore bundle. Nothing here does
I/O or checks a signature: the gate judges what a report says, the provenance phase whether its
signer is trusted.

Every reader is bounded before it parses (``MAX_REPORT_BYTES``, ``MAX_DEPTH``) and while it walks
(``MAX_FINDINGS`` per report, ``MAX_ID_LENGTH``); a document that is not what it claims to be, or
a severity word its format does not have, raises VulnerabilityReportError naming where it came
from. Duplicate keys and NaN are refused, as in imgctl's signature payloads.

Severities land on kpromo's scale (promo-tools ``promoter/image/vuln/scanner.go``: Grafeas's
enum, 0 UNSPECIFIED .. 5 CRITICAL); docs/cip.md has the table this module implements.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, Literal

from imgctl.errors import VulnerabilityReportError

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "MAX_DEPTH",
    "MAX_FINDINGS",
    "MAX_REPORT_BYTES",
    "VULN_PREDICATE_TYPE",
    "Finding",
    "Report",
    "ReportKind",
    "Severity",
    "bundle_envelope",
    "detect",
    "envelope_statement",
    "load_json",
    "parse_document",
    "parse_report",
    "sarif_severity",
    "statement_report",
]

# A Trivy report of a large image with descriptions is a few MiB; a DSSE envelope holding one
# in base64 is a third larger again.
MAX_REPORT_BYTES: Final = 32 * 1024 * 1024
# Trivy nests 6 deep, SARIF about 10; nothing real comes near this.
MAX_DEPTH: Final = 64
MAX_FINDINGS: Final = 100_000
MAX_ID_LENGTH: Final = 256
# SARIF: more runs than this in one log is no scanner's output.
_MAX_RUNS: Final = 100

VULN_PREDICATE_TYPE: Final = "https://cosign.sigstore.dev/attestation/vuln/v1"
IN_TOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
_STATEMENT_TYPES: Final = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"}
)

ReportKind = Literal["auto", "trivy", "grype", "sarif"]


class Severity(IntEnum):
    """kpromo's severity scale (Grafeas's enum): the threshold compares these numbers."""

    UNSPECIFIED = 0
    MINIMAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


# Trivy's five words (trivy-db's SeverityNames), as Trivy writes them.
_TRIVY: Final = {
    "UNKNOWN": Severity.UNSPECIFIED,
    "LOW": Severity.LOW,
    "MEDIUM": Severity.MEDIUM,
    "HIGH": Severity.HIGH,
    "CRITICAL": Severity.CRITICAL,
}
# Grype's six (grype/vulnerability/severity.go), read case-insensitively as Grype reads them.
_GRYPE: Final = {
    "unknown": Severity.UNSPECIFIED,
    "negligible": Severity.MINIMAL,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
# SARIF's result levels (SARIF 2.1.0 section 3.27.10), for results without security-severity.
_SARIF_LEVELS: Final = {
    "none": Severity.UNSPECIFIED,
    "note": Severity.LOW,
    "warning": Severity.MEDIUM,
    "error": Severity.HIGH,
}
# Trivy tags the rules of its other scanners so; they are not vulnerabilities.
_SARIF_NOT_VULNERABILITIES: Final = frozenset({"misconfiguration", "secret", "license"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One vulnerability a report names: its id, severity and (where said) the package."""

    id: str
    severity: Severity
    package: str | None = None
    installed: str | None = None
    fixed: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What one report says: its format, the scanner that wrote it (if it says) and findings."""

    format: str  # "Trivy JSON", "Grype JSON", "SARIF"
    scanner: str | None
    findings: tuple[Finding, ...]

    @property
    def label(self) -> str:
        """``format`` and scanner, for messages: ``SARIF from Trivy dev``."""
        return f"{self.format} from {self.scanner}" if self.scanner else self.format


# ----------------------------------------------------------------------------- JSON


# A JSON string (escapes included) or one bracket: what nesting depth is counted from.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _check_depth(text: str, where: str) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise VulnerabilityReportError(
                    f"{where}: nests deeper than {MAX_DEPTH} levels; no report does"
                )
        elif token in ("]", "}"):
            depth -= 1


def load_json(data: bytes, where: str) -> Any:
    """Parse ``data`` as JSON after bounding its size and depth; duplicate keys and NaN refused."""
    if len(data) > MAX_REPORT_BYTES:
        raise VulnerabilityReportError(
            f"{where} is {len(data)} bytes; refusing more than {MAX_REPORT_BYTES // (1 << 20)} MiB"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VulnerabilityReportError(
            f"{where} is not UTF-8 text (byte {exc.start})", hint="a report is a JSON document"
        ) from None
    _check_depth(text, where)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise VulnerabilityReportError(f"{where}: duplicate key {key[:100]!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise VulnerabilityReportError(f"{where}: {name} is not JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, VulnerabilityReportError):
            raise
        raise VulnerabilityReportError(
            f"{where} is not JSON ({str(exc)[:200]})", hint="a report is a JSON document"
        ) from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VulnerabilityReportError(f"{where} is {_kind(value)}, not an object")
    return value


def _list(value: Any, where: str, *, optional: bool = False) -> list[Any]:
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise VulnerabilityReportError(f"{where} is {_kind(value)}, not a list")
    return value


def _text(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise VulnerabilityReportError(f"{where} is {_kind(value)}, not a string")
    return value


def _identifier(value: Any, where: str) -> str:
    text = _text(value, where)
    assert text is not None
    if not text.strip():
        raise VulnerabilityReportError(f"{where} is empty")
    if len(text) > MAX_ID_LENGTH or not text.isprintable():
        raise VulnerabilityReportError(
            f"{where} is no vulnerability id ({len(text)} characters, printable: "
            f"{text.isprintable()})"
        )
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _count(findings: list[Finding], where: str) -> None:
    if len(findings) >= MAX_FINDINGS:
        raise VulnerabilityReportError(
            f"{where} lists more than {MAX_FINDINGS} vulnerabilities; refusing to read on",
            hint="no image's report holds that many; check what wrote it",
        )


# ----------------------------------------------------------------------------- formats


def detect(document: Any) -> Literal["trivy", "grype", "sarif", "cosign-vuln"] | None:
    """Which format a parsed document is, by the fields each format always writes."""
    if not isinstance(document, dict):
        return None
    if "runs" in document and isinstance(document.get("version"), str):
        return "sarif"
    if "SchemaVersion" in document and ("Results" in document or "ArtifactName" in document):
        return "trivy"
    descriptor = document.get("descriptor")
    if "matches" in document and isinstance(descriptor, dict) and descriptor.get("name") == "grype":
        return "grype"
    scanner = document.get("scanner")
    if isinstance(scanner, dict) and "result" in scanner:
        return "cosign-vuln"
    return None


def parse_report(data: bytes, where: str, kind: ReportKind = "auto") -> Report:
    """The findings of one report's bytes; ``auto`` tells the format from the document."""
    return parse_document(load_json(data, where), where, kind)


def parse_document(document: Any, where: str, kind: ReportKind = "auto") -> Report:
    """The findings of an already parsed report (``auto``: also a cosign vuln predicate)."""
    found = detect(document)
    if kind == "auto":
        if found is None:
            raise VulnerabilityReportError(
                f"{where} is no Trivy, Grype or SARIF report"
                + (f" ({_kind(document)})" if not isinstance(document, dict) else ""),
                hint="a scanner must print JSON: trivy --format json, grype -o json, or sarif",
            )
        if found == "cosign-vuln":
            return _cosign_vuln(document, where)
        kind = found
    elif found not in (kind, None) and found != "cosign-vuln":
        raise VulnerabilityReportError(f"{where} is declared {kind} but reads as {found}")
    if kind == "trivy":
        return _trivy(_object(document, where), where)
    if kind == "grype":
        return _grype(_object(document, where), where)
    return _sarif(_object(document, where), where)


def _trivy(document: dict[str, Any], where: str) -> Report:
    version = document.get("SchemaVersion")
    if version != 2 or isinstance(version, bool):
        raise VulnerabilityReportError(
            f"{where}: Trivy SchemaVersion is {version!r}; imgctl reads 2 (Trivy 0.20 and later)"
        )
    trivy = document.get("Trivy")
    scanner = "Trivy"
    if isinstance(trivy, dict) and isinstance(trivy.get("Version"), str):
        scanner = f"Trivy {trivy['Version'][:40]}"
    findings: list[Finding] = []
    results = _list(document.get("Results"), f"{where}: Results", optional=True)
    for r, result in enumerate(results):
        at = f"{where}: Results[{r}]"
        result = _object(result, at)
        # Misconfigurations, Secrets and Licenses are other scanners' findings, not vulnerabilities.
        for v, vuln in enumerate(
            _list(result.get("Vulnerabilities"), f"{at}.Vulnerabilities", optional=True)
        ):
            _count(findings, where)
            here = f"{at}.Vulnerabilities[{v}]"
            vuln = _object(vuln, here)
            word = _text(vuln.get("Severity"), f"{here}.Severity", optional=True)
            if word is None:
                severity = Severity.UNSPECIFIED  # Trivy leaves it out when unknown
            elif word in _TRIVY:
                severity = _TRIVY[word]
            else:
                raise VulnerabilityReportError(
                    f"{here}.Severity is {word[:40]!r}; Trivy writes one of " + ", ".join(_TRIVY)
                )
            findings.append(
                Finding(
                    _identifier(vuln.get("VulnerabilityID"), f"{here}.VulnerabilityID"),
                    severity,
                    _text(vuln.get("PkgName"), f"{here}.PkgName", optional=True),
                    _text(vuln.get("InstalledVersion"), f"{here}.InstalledVersion", optional=True),
                    _text(vuln.get("FixedVersion"), f"{here}.FixedVersion", optional=True),
                )
            )
    return Report("Trivy JSON", scanner, tuple(findings))


def _grype(document: dict[str, Any], where: str) -> Report:
    descriptor = _object(document.get("descriptor"), f"{where}: descriptor")
    scanner = "grype"
    if isinstance(descriptor.get("version"), str):
        scanner = f"grype {descriptor['version'][:40]}"
    findings: list[Finding] = []
    for m, match in enumerate(_list(document.get("matches"), f"{where}: matches")):
        _count(findings, where)
        here = f"{where}: matches[{m}]"
        match = _object(match, here)
        vuln = _object(match.get("vulnerability"), f"{here}.vulnerability")
        word = _text(vuln.get("severity"), f"{here}.vulnerability.severity", optional=True)
        if word is None:
            severity = Severity.UNSPECIFIED  # grype omits it when its database has none
        elif word.lower() in _GRYPE:
            severity = _GRYPE[word.lower()]
        else:
            raise VulnerabilityReportError(
                f"{here}.vulnerability.severity is {word[:40]!r}; Grype writes one of "
                "Unknown, Negligible, Low, Medium, High, Critical"
            )
        artifact = match.get("artifact")
        artifact = _object(artifact, f"{here}.artifact") if artifact is not None else {}
        fixed = None
        fix = vuln.get("fix")
        if fix is not None:
            fix = _object(fix, f"{here}.vulnerability.fix")
            versions = _list(
                fix.get("versions"), f"{here}.vulnerability.fix.versions", optional=True
            )
            texts = [_text(v, f"{here}.vulnerability.fix.versions[]") for v in versions[:20]]
            fixed = ", ".join(t for t in texts if t) or None
        findings.append(
            Finding(
                _identifier(vuln.get("id"), f"{here}.vulnerability.id"),
                severity,
                _text(artifact.get("name"), f"{here}.artifact.name", optional=True),
                _text(artifact.get("version"), f"{here}.artifact.version", optional=True),
                fixed,
            )
        )
    return Report("Grype JSON", scanner, tuple(findings))


def sarif_severity(value: Any, where: str) -> Severity:
    """A ``security-severity`` (a CVSS-like score 0.0..10.0, GitHub's bands) on kpromo's scale."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise VulnerabilityReportError(f"{where} is {_kind(value)}, not a score")
    try:
        score = float(value)
    except ValueError:
        raise VulnerabilityReportError(f"{where} is {str(value)[:40]!r}, not a score") from None
    if math.isnan(score) or not 0.0 <= score <= 10.0:
        raise VulnerabilityReportError(f"{where} is {str(value)[:40]!r}, outside 0.0..10.0")
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    # Trivy writes 0.0 for UNKNOWN: no score is no severity.
    return Severity.UNSPECIFIED


def _properties(holder: Mapping[str, Any], where: str) -> dict[str, Any]:
    value = holder.get("properties")
    return {} if value is None else _object(value, f"{where}.properties")


def _sarif(document: dict[str, Any], where: str) -> Report:
    if document.get("version") != "2.1.0":
        raise VulnerabilityReportError(
            f"{where}: SARIF version is {str(document.get('version'))[:20]!r}; imgctl reads 2.1.0"
        )
    runs = _list(document.get("runs"), f"{where}: runs")
    if len(runs) > _MAX_RUNS:
        raise VulnerabilityReportError(f"{where} has {len(runs)} runs; refusing more than 100")
    findings: list[Finding] = []
    scanners: list[str] = []
    for r, run in enumerate(runs):
        at = f"{where}: runs[{r}]"
        run = _object(run, at)
        driver = _object(_object(run.get("tool"), f"{at}.tool").get("driver"), f"{at}.tool.driver")
        name = _text(driver.get("name"), f"{at}.tool.driver.name")
        version = driver.get("version")
        scanners.append(f"{name} {version}"[:60] if isinstance(version, str) else str(name)[:60])
        rules = _list(driver.get("rules"), f"{at}.tool.driver.rules", optional=True)
        if len(rules) > MAX_FINDINGS:
            raise VulnerabilityReportError(f"{at} has {len(rules)} rules; refusing so many")
        by_id: dict[str, dict[str, Any]] = {}
        for i, rule in enumerate(rules):
            rule = _object(rule, f"{at}.tool.driver.rules[{i}]")
            rule_id = rule.get("id")
            if isinstance(rule_id, str):
                by_id.setdefault(rule_id, rule)
        for i, result in enumerate(_list(run.get("results"), f"{at}.results", optional=True)):
            _count(findings, where)
            finding = _sarif_result(
                _object(result, f"{at}.results[{i}]"), rules, by_id, f"{at}.results[{i}]"
            )
            if finding is not None:
                findings.append(finding)
    return Report("SARIF", ", ".join(dict.fromkeys(scanners)) or None, tuple(findings))


def _sarif_result(
    result: dict[str, Any],
    rules: list[Any],
    by_id: dict[str, dict[str, Any]],
    here: str,
) -> Finding | None:
    reference = result.get("rule")
    reference = _object(reference, f"{here}.rule") if reference is not None else {}
    rule_id = result.get("ruleId", reference.get("id"))
    index = result.get("ruleIndex", reference.get("index"))
    rule: dict[str, Any] = {}
    if index is not None and index != -1:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(rules):
            raise VulnerabilityReportError(f"{here}.ruleIndex {index!r} names no rule")
        rule = rules[index]
    elif isinstance(rule_id, str):
        rule = by_id.get(rule_id, {})
    if rule_id is None:
        rule_id = rule.get("id")
    identifier = _identifier(rule_id, f"{here}.ruleId")
    rule_properties = _properties(rule, f"{here} rule")
    tags = rule_properties.get("tags")
    if isinstance(tags, list):
        words = {t.lower() for t in tags if isinstance(t, str)}
        if words & _SARIF_NOT_VULNERABILITIES and "vulnerability" not in words:
            return None
    score = _properties(result, here).get("security-severity")
    if score is None:
        score = rule_properties.get("security-severity")
    if score is not None:
        severity = sarif_severity(score, f"{here} security-severity")
    else:
        level = result.get("level")
        if level is None:
            configuration = rule.get("defaultConfiguration")
            if isinstance(configuration, dict):
                level = configuration.get("level")
        level = "warning" if level is None else level  # SARIF's default level
        if not isinstance(level, str) or level not in _SARIF_LEVELS:
            raise VulnerabilityReportError(
                f"{here}.level is {str(level)[:20]!r}; SARIF has none, note, warning, error"
            )
        severity = _SARIF_LEVELS[level]
    return Finding(identifier, severity)


def _cosign_vuln(predicate: dict[str, Any], where: str) -> Report:
    scanner = _object(predicate.get("scanner"), f"{where}: scanner")
    result = scanner.get("result")
    if result is None:
        raise VulnerabilityReportError(
            f"{where}: the vulnerability scan record holds no scanner result (scanner.result is "
            "null)",
            hint="attach the scanner's report: trivy --format cosign-vuln, or a predicate "
            "whose scanner.result is the scanner's JSON",
        )
    if detect(result) in (None, "cosign-vuln"):
        raise VulnerabilityReportError(
            f"{where}: scanner.result is no Trivy, Grype or SARIF report"
        )
    report = parse_document(result, f"{where}: scanner.result")
    uri = scanner.get("uri")
    if isinstance(uri, str) and uri.strip():
        # The record says which scanner (and version) it ran: pkg:github/aquasecurity/trivy@...
        return Report(report.format, uri[:80], report.findings)
    return report


# ----------------------------------------------------------------------------- attestations


def _b64(text: str, where: str) -> bytes:
    """DSSE's base64: standard or URL-safe, padded or not (the DSSE protocol allows each)."""
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise VulnerabilityReportError(f"{where}: payload is not base64")


def envelope_statement(envelope: Any, where: str) -> dict[str, Any] | None:
    """The in-toto statement a DSSE envelope (parsed) carries; None for another payload type.

    Signatures are not checked here: whether the gate may trust the attestation's signer is the
    provenance phase's question; the gate reads what the report says.
    """
    envelope = _object(envelope, where)
    extra = sorted(set(envelope) - {"payload", "payloadType", "signatures"})
    if extra:
        raise VulnerabilityReportError(
            f"{where}: a DSSE envelope has payload, payloadType and signatures, not "
            + ", ".join(e[:40] for e in extra[:5])
        )
    payload_type = _text(envelope.get("payloadType"), f"{where}: payloadType")
    payload = _text(envelope.get("payload"), f"{where}: payload")
    _list(envelope.get("signatures"), f"{where}: signatures")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return None
    assert payload is not None
    statement = load_json(_b64(payload, where), f"{where}: statement")
    statement = _object(statement, f"{where}: statement")
    kind = statement.get("_type")
    if kind not in _STATEMENT_TYPES:
        raise VulnerabilityReportError(
            f"{where}: statement _type is {str(kind)[:60]!r}, not an in-toto Statement"
        )
    return statement


def bundle_envelope(bundle: Any, where: str) -> dict[str, Any] | None:
    """The DSSE envelope of a sigstore bundle (parsed); None for a message-signature bundle."""
    bundle = _object(bundle, where)
    envelope = bundle.get("dsseEnvelope")
    if envelope is None:
        return None
    return _object(envelope, f"{where}: dsseEnvelope")


def statement_report(statement: Mapping[str, Any], digest_hex: str, where: str) -> Report | None:
    """The report a vulnerability statement about ``sha256:<digest_hex>`` holds.

    None when the statement has another predicate type (provenance, SBOM...). A vulnerability
    statement about other digests only is refused: it is not this image's report.
    """
    predicate_type = statement.get("predicateType")
    if predicate_type != VULN_PREDICATE_TYPE:
        return None
    subjects = _list(statement.get("subject"), f"{where}: subject")
    named: list[str] = []
    for i, subject in enumerate(subjects[:1000]):
        digests = _object(
            _object(subject, f"{where}: subject[{i}]").get("digest"),
            f"{where}: subject[{i}].digest",
        )
        value = digests.get("sha256")
        if value == digest_hex:
            break
        if isinstance(value, str):
            named.append(f"sha256:{value[:64]}")
    else:
        raise VulnerabilityReportError(
            f"{where}: the vulnerability statement is about "
            + (", ".join(named[:3]) or "no sha256 digest")
            + f", not sha256:{digest_hex}",
            hint="a report attached to an image must name that image's digest",
        )
    predicate = _object(statement.get("predicate"), f"{where}: predicate")
    return _cosign_vuln(predicate, where)
