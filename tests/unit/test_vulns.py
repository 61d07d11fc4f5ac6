"""The vulnerability gate's readers and verdicts (issue 19 item 3), on real reports.

The reports are Trivy's and Grype's own golden outputs and cosign's vuln attestation envelopes
(tests/support/vulns.py finds them; tests/data/vulns/README.md says where each comes from).
Derived cases (one severity word changed, a field removed) are made in the test from a real
report, so every document read is a real scanner's shape. The scanner command itself runs as a
process in tests/integration/test_cip_vulns.py.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest

from imgctl.errors import ImgctlError, UsageError, VulnerabilityReportError
from imgctl.promotion._vulnreports import (
    MAX_DEPTH,
    MAX_FINDINGS,
    MAX_REPORT_BYTES,
    VULN_PREDICATE_TYPE,
    Finding,
    Report,
    Severity,
    bundle_envelope,
    envelope_statement,
    load_json,
    parse_document,
    parse_report,
    sarif_severity,
    statement_report,
)
from imgctl.promotion.vulns import (
    check_threshold,
    judge,
    scanner_command,
    severity_label,
)

from ..support.vulns import fixture

# cosign's envelopes (pkg/policy/testdata) are about this digest.
COSIGN_SUBJECT = "3c19aa980a9c5709a2c96c2d0779febf6e5e453b92b172ce84cb85fdaf695373"
OTHER = "0" * 64


def doc(name: str) -> Any:
    return json.loads(fixture(name))


def ids(report: Report) -> dict[str, Severity]:
    return {f.id: f.severity for f in report.findings}


# ----------------------------------------------------------------------------- the scale


def test_the_scale_is_kpromos() -> None:
    # promo-tools promoter/image/vuln/scanner.go: SeverityUnspecified = iota .. SeverityCritical
    assert [(s.name, s.value) for s in Severity] == [
        ("UNSPECIFIED", 0),
        ("MINIMAL", 1),
        ("LOW", 2),
        ("MEDIUM", 3),
        ("HIGH", 4),
        ("CRITICAL", 5),
    ]
    assert severity_label(4) == "HIGH (4)"


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5])
def test_thresholds_one_to_five_are_accepted(value: int) -> None:
    assert check_threshold(value) == Severity(value)


@pytest.mark.parametrize("value", [0, -1, 6, True])
def test_other_thresholds_are_refused(value: int) -> None:
    with pytest.raises(UsageError, match=r"outside 1\.\.5"):
        check_threshold(value)


# ----------------------------------------------------------------------------- real reports


REAL = [
    # file, format, {id: severity} (distinct ids), findings (one per package and id)
    (
        "trivy-alpine-310.json",
        "Trivy JSON",
        {"CVE-2019-1549": Severity.MEDIUM, "CVE-2019-1551": Severity.MEDIUM},
        4,
    ),
    (
        "trivy-alpine-39-high-critical.json",
        "Trivy JSON",
        {"CVE-2019-14697": Severity.CRITICAL},
        2,
    ),
    (
        "trivy-mariner-1.0.json",
        "Trivy JSON",
        {"CVE-2022-0261": Severity.HIGH, "CVE-2022-0158": Severity.LOW},
        2,
    ),
    (
        "trivy-gomod-vex.json",
        "Trivy JSON",
        {"GMS-2022-20": Severity.UNSPECIFIED, "CVE-2021-38561": Severity.UNSPECIFIED},
        4,
    ),
    ("trivy-alpine-39-skip.json", "Trivy JSON", {}, 0),
    # Trivy's secret scanner found two secrets: not vulnerabilities.
    ("trivy-secrets.json", "Trivy JSON", {}, 0),
    (
        "trivy-alpine-310.sarif",
        "SARIF",
        {"CVE-2019-1549": Severity.MEDIUM, "CVE-2019-1551": Severity.MEDIUM},
        4,
    ),
    (
        "grype-image.json",
        "Grype JSON",
        {"CVE-1999-0001": Severity.LOW, "CVE-1999-0002": Severity.CRITICAL},
        2,
    ),
    ("grype-empty.json", "Grype JSON", {}, 0),
    # Grype's SARIF carries the CVSS base score as security-severity (8.2 for a finding its
    # JSON calls Low): SARIF is read by its score, GitHub's bands.
    (
        "grype-image.sarif",
        "SARIF",
        {"CVE-1999-0001-package-1": Severity.HIGH, "CVE-1999-0002-package-2": Severity.HIGH},
        2,
    ),
    # trivy --format cosign-vuln: the scan record around Trivy's JSON.
    (
        "trivy-cosign-vuln-alpine-310.json",
        "Trivy JSON",
        {"CVE-2021-36159": Severity.CRITICAL},
        1,
    ),
]


@pytest.mark.parametrize(("name", "kind", "expected", "count"), REAL, ids=[r[0] for r in REAL])
def test_real_reports_read_as_their_scanner_says(
    name: str, kind: str, expected: dict[str, Severity], count: int
) -> None:
    report = parse_report(fixture(name), name)
    assert report.format == kind
    assert ids(report) == expected
    assert len(report.findings) == count


def test_packages_and_versions_are_kept() -> None:
    trivy = parse_report(fixture("trivy-alpine-39-high-critical.json"), "t")
    assert trivy.findings[0] == Finding(
        "CVE-2019-14697", Severity.CRITICAL, "musl", "1.1.20-r4", "1.1.20-r5"
    )
    assert trivy.scanner == "Trivy dev"
    grype = parse_report(fixture("grype-image.json"), "g")
    assert grype.findings[0] == Finding(
        "CVE-1999-0001", Severity.LOW, "package-1", "1.1.1", "1.2.1, 2.1.3, 3.4.0"
    )
    record = parse_report(fixture("trivy-cosign-vuln-alpine-310.json"), "c")
    assert record.scanner == "pkg:github/aquasecurity/trivy@v0.30.1-8-gf9cb8a28"


def test_trivy_json_and_trivy_sarif_of_one_scan_agree() -> None:
    as_json = parse_report(fixture("trivy-alpine-310.json"), "j")
    as_sarif = parse_report(fixture("trivy-alpine-310.sarif"), "s")
    assert ids(as_json) == ids(as_sarif)
    verdict = judge("i@sha256:1", 3, [("j", as_json), ("s", as_sarif)])
    assert dict(verdict.counts) == {Severity.MEDIUM: 2}  # the same ids count once


def test_declared_formats_are_held_to() -> None:
    parse_report(fixture("trivy-alpine-310.sarif"), "s", "sarif")
    with pytest.raises(VulnerabilityReportError, match="declared sarif but reads as trivy"):
        parse_report(fixture("trivy-alpine-310.json"), "r", "sarif")
    with pytest.raises(VulnerabilityReportError, match="no Trivy, Grype or SARIF report"):
        parse_report(b'{"bomFormat": "CycloneDX"}', "an SBOM")


# ----------------------------------------------------------------------------- mappings


def trivy_with(severity: object) -> Any:
    document = doc("trivy-mariner-1.0.json")
    vuln = document["Results"][0]["Vulnerabilities"][0]
    if severity is None:
        del vuln["Severity"]
    else:
        vuln["Severity"] = severity
    document["Results"][0]["Vulnerabilities"] = [vuln]
    return document


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("UNKNOWN", Severity.UNSPECIFIED),
        (None, Severity.UNSPECIFIED),
        ("LOW", Severity.LOW),
        ("MEDIUM", Severity.MEDIUM),
        ("HIGH", Severity.HIGH),
        ("CRITICAL", Severity.CRITICAL),
    ],
)
def test_trivy_words(word: str | None, severity: Severity) -> None:
    report = parse_document(trivy_with(word), "t")
    assert [f.severity for f in report.findings] == [severity]


@pytest.mark.parametrize("word", ["critical", "SEVERE", "NEGLIGIBLE", ""])
def test_a_word_trivy_does_not_write_is_refused(word: str) -> None:
    with pytest.raises(VulnerabilityReportError, match=r"Results\[0\]\.Vulnerabilities\[0\]"):
        parse_document(trivy_with(word), "t")


def grype_with(severity: object) -> Any:
    document = doc("grype-image.json")
    match = document["matches"][1]
    if severity is None:
        del match["vulnerability"]["severity"]
    else:
        match["vulnerability"]["severity"] = severity
    document["matches"] = [match]
    return document


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("Unknown", Severity.UNSPECIFIED),
        (None, Severity.UNSPECIFIED),
        ("Negligible", Severity.MINIMAL),
        ("Low", Severity.LOW),
        ("Medium", Severity.MEDIUM),
        ("High", Severity.HIGH),
        ("Critical", Severity.CRITICAL),
        ("critical", Severity.CRITICAL),  # grype's ParseSeverity lowercases
    ],
)
def test_grype_words(word: str | None, severity: Severity) -> None:
    report = parse_document(grype_with(word), "g")
    assert [f.severity for f in report.findings] == [severity]


def test_a_word_grype_does_not_write_is_refused() -> None:
    with pytest.raises(VulnerabilityReportError, match="'Severe'; Grype writes one of"):
        parse_document(grype_with("Severe"), "g")


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        ("0.0", Severity.UNSPECIFIED),  # Trivy's UNKNOWN
        ("0.1", Severity.LOW),
        ("3.9", Severity.LOW),
        ("4.0", Severity.MEDIUM),
        ("6.9", Severity.MEDIUM),
        ("7.0", Severity.HIGH),
        ("8.9", Severity.HIGH),
        ("9.0", Severity.CRITICAL),
        ("10", Severity.CRITICAL),
        (9.5, Severity.CRITICAL),
    ],
)
def test_security_severity_bands(score: object, severity: Severity) -> None:
    assert sarif_severity(score, "s") == severity


@pytest.mark.parametrize("score", ["10.1", "-1", "NaN", "high", True, None, [7]])
def test_a_score_outside_the_scale_is_refused(score: object) -> None:
    with pytest.raises(VulnerabilityReportError):
        sarif_severity(score, "s")


def sarif_without_scores() -> Any:
    document = doc("trivy-alpine-310.sarif")
    for rule in document["runs"][0]["tool"]["driver"]["rules"]:
        del rule["properties"]["security-severity"]
    return document


@pytest.mark.parametrize(
    ("level", "default", "severity"),
    [
        ("error", "warning", Severity.HIGH),
        ("warning", "error", Severity.MEDIUM),
        ("note", "error", Severity.LOW),
        ("none", "error", Severity.UNSPECIFIED),
        (None, "error", Severity.HIGH),  # the rule's default configuration
        (None, None, Severity.MEDIUM),  # SARIF's default level is warning
    ],
)
def test_sarif_levels_without_a_score(
    level: str | None, default: str | None, severity: Severity
) -> None:
    document = sarif_without_scores()
    run = document["runs"][0]
    for rule in run["tool"]["driver"]["rules"]:
        if default is None:
            del rule["defaultConfiguration"]
        else:
            rule["defaultConfiguration"]["level"] = default
    for result in run["results"]:
        if level is None:
            del result["level"]
        else:
            result["level"] = level
    report = parse_document(document, "s")
    assert {f.severity for f in report.findings} == {severity}


def test_a_sarif_level_that_does_not_exist_is_refused() -> None:
    document = sarif_without_scores()
    document["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(VulnerabilityReportError, match=r"results\[0\]\.level is 'fatal'"):
        parse_document(document, "s")


def test_trivy_misconfigurations_and_secrets_in_sarif_are_no_vulnerabilities() -> None:
    document = doc("trivy-alpine-310.sarif")
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    rules[0]["properties"]["tags"] = ["misconfiguration", "security", "HIGH"]
    rules[1]["properties"]["tags"] = ["secret", "security", "CRITICAL"]
    assert parse_document(document, "s").findings == ()


def test_sarif_rule_index_out_of_range_is_refused() -> None:
    document = doc("trivy-alpine-310.sarif")
    document["runs"][0]["results"][0]["ruleIndex"] = 7
    with pytest.raises(VulnerabilityReportError, match="ruleIndex 7 names no rule"):
        parse_document(document, "s")


# ----------------------------------------------------------------------------- thresholds


def report_of(*findings: tuple[str, Severity]) -> Report:
    return Report("Trivy JSON", "Trivy", tuple(Finding(i, s) for i, s in findings))


@pytest.mark.parametrize("threshold", [1, 2, 3, 4, 5])
def test_at_the_threshold_is_refused_and_one_below_passes(threshold: int) -> None:
    at = judge("i", threshold, [("r", report_of(("CVE-1", Severity(threshold))))])
    assert at.status == "refused"
    assert not at.ok
    below = judge("i", threshold, [("r", report_of(("CVE-1", Severity(threshold - 1))))])
    assert below.status == "passed"
    assert below.ok


def test_the_real_reports_against_high() -> None:
    critical = judge(
        "a@sha256:1", 4, [("r", parse_report(fixture("trivy-alpine-39-high-critical.json"), "r"))]
    )
    assert critical.status == "refused"
    assert critical.highest == Severity.CRITICAL
    assert critical.reason == (
        "1 vulnerability at or above HIGH (4) (highest CRITICAL (5)): "
        "CVE-2019-14697 (CRITICAL, musl 1.1.20-r4)"
    )
    medium = judge("b@sha256:2", 4, [("r", parse_report(fixture("trivy-alpine-310.json"), "r"))])
    assert medium.status == "passed"
    assert medium.reason == "nothing at or above HIGH (4): 2 MEDIUM"
    assert judge("b", 3, [("r", parse_report(fixture("trivy-alpine-310.json"), "r"))]).status == (
        "refused"
    )


def test_an_image_without_reports_passes_saying_so() -> None:
    verdict = judge("i@sha256:1", 1, [])
    assert verdict.status == "passed"
    assert verdict.highest is None
    assert verdict.reason == "no vulnerability report found (nothing at or above MINIMAL (1))"


def test_an_id_counts_once_at_its_highest_severity() -> None:
    verdict = judge(
        "i",
        5,
        [
            ("a", report_of(("CVE-1", Severity.LOW), ("CVE-2", Severity.MEDIUM))),
            ("b", report_of(("CVE-1", Severity.HIGH))),
        ],
    )
    assert dict(verdict.counts) == {Severity.HIGH: 1, Severity.MEDIUM: 1}
    assert verdict.count_text() == "1 HIGH, 1 MEDIUM"
    assert verdict.as_dict()["counts"] == {
        "CRITICAL": 0,
        "HIGH": 1,
        "MEDIUM": 1,
        "LOW": 0,
        "MINIMAL": 0,
        "UNSPECIFIED": 0,
    }


def test_a_refusal_names_the_worst_five_and_counts_the_rest() -> None:
    findings = [(f"CVE-{n}", Severity.HIGH) for n in range(10)] + [("CVE-X", Severity.CRITICAL)]
    verdict = judge("i", 4, [("r", report_of(*findings))])
    assert verdict.reason == (
        "11 vulnerabilities at or above HIGH (4) (highest CRITICAL (5)): CVE-X (CRITICAL), "
        "CVE-0 (HIGH), CVE-1 (HIGH), CVE-2 (HIGH), CVE-3 (HIGH) and 6 more"
    )
    assert [b["id"] for b in verdict.as_dict()["blocking"]][:2] == ["CVE-X", "CVE-0"]  # type: ignore[index]


def test_an_unreadable_report_is_an_error_even_when_the_rest_is_clean() -> None:
    verdict = judge("i", 5, [("r", report_of(("CVE-1", Severity.LOW)))], ["referrer x: not JSON"])
    assert verdict.status == "error"
    assert not verdict.ok
    assert verdict.reason == "vulnerabilities cannot be judged: referrer x: not JSON"


# ----------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is not JSON"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b'{"SchemaVersion": 2, "SchemaVersion": 2, "Results": []}', "duplicate key"),
        (b'{"runs": [], "version": NaN}', "NaN is not JSON"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nests deeper than 64"),
        (b'{"SchemaVersion": 1, "Results": []}', "SchemaVersion is 1"),
        (b'{"SchemaVersion": 2, "Results": {}}', "Results is an object, not a list"),
        (
            b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"Severity": "LOW"}]}]}',
            r"VulnerabilityID is null, not a string",
        ),
        (b'{"matches": [{}], "descriptor": {"name": "grype"}}', "vulnerability is null"),
        (b'{"version": "2.0.0", "runs": []}', "SARIF version is '2.0.0'"),
        (b'"a string"', "no Trivy, Grype or SARIF report"),
    ],
)
def test_malformed_reports_are_one_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(VulnerabilityReportError, match=message) as caught:
        parse_report(data, "referrer sha256:abcd")
    assert str(caught.value).startswith("referrer sha256:abcd")


def test_a_long_or_unprintable_id_is_refused() -> None:
    for bad in ("CVE-" + "9" * 300, "CVE-1\x1b[31m"):
        document = trivy_with("HIGH")
        document["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"] = bad
        with pytest.raises(VulnerabilityReportError, match="is no vulnerability id"):
            parse_document(document, "t")


def test_a_huge_report_is_refused_before_it_is_read() -> None:
    with pytest.raises(VulnerabilityReportError, match="refusing more than 32 MiB"):
        load_json(b" " * (MAX_REPORT_BYTES + 1), "referrer x")


def test_too_many_findings_are_refused() -> None:
    one = {"VulnerabilityID": "CVE-1", "Severity": "LOW"}
    document = {"SchemaVersion": 2, "Results": [{"Vulnerabilities": [one] * (MAX_FINDINGS + 1)}]}
    with pytest.raises(VulnerabilityReportError, match="more than 100000 vulnerabilities"):
        parse_report(json.dumps(document).encode(), "r")
    document["Results"][0]["Vulnerabilities"] = [one] * (MAX_FINDINGS - 1)
    assert len(parse_report(json.dumps(document).encode(), "r").findings) == MAX_FINDINGS - 1


@pytest.mark.parametrize(
    "name", ["trivy-alpine-310.json", "grype-image.json", "trivy-alpine-310.sarif"]
)
def test_damaged_real_reports_never_raise_anything_else(name: str) -> None:
    data = fixture(name)
    rng = random.Random(name)
    damaged = [data[:cut] for cut in range(0, len(data), 97)]
    for _ in range(300):
        mutable = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutable[rng.randrange(len(mutable))] = rng.randrange(256)
        damaged.append(bytes(mutable))
    for sample in damaged:
        try:
            parse_report(sample, "damaged")
        except VulnerabilityReportError:
            pass
        except Exception as exc:  # pragma: no cover - the point of the test
            pytest.fail(f"{type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- attestations


def envelope(statement: Any, *, payload_type: str = "application/vnd.in-toto+json") -> Any:
    body = json.dumps(statement).encode()
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": "", "sig": "MEUCIQ=="}],
    }


def vuln_statement(digest: str, predicate: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": VULN_PREDICATE_TYPE,
        "subject": [{"name": "registry.local/app", "digest": {"sha256": digest}}],
        "predicate": predicate,
    }


def test_cosigns_vuln_envelope_reads_and_its_null_result_is_no_report() -> None:
    statement = envelope_statement(load_json(fixture("cosign-vuln-envelope.json"), "e"), "e")
    assert statement is not None
    assert statement["predicateType"] == VULN_PREDICATE_TYPE
    with pytest.raises(VulnerabilityReportError, match="holds no scanner result"):
        statement_report(statement, COSIGN_SUBJECT, "e")


def test_cosigns_envelope_with_another_predicate_type_is_not_a_vuln_report() -> None:
    # pkg/policy/testdata/malformed/vuln: predicateType without https://
    statement = envelope_statement(
        load_json(fixture("cosign-vuln-envelope-wrong-type.json"), "e"), "e"
    )
    assert statement is not None
    assert statement_report(statement, COSIGN_SUBJECT, "e") is None


def test_a_statement_about_another_digest_is_refused() -> None:
    statement = envelope_statement(load_json(fixture("cosign-vuln-envelope.json"), "e"), "e")
    assert statement is not None
    with pytest.raises(VulnerabilityReportError, match=f"about sha256:{COSIGN_SUBJECT}, not"):
        statement_report(statement, OTHER, "e")


def test_trivys_scan_record_in_an_envelope_is_read() -> None:
    predicate = doc("trivy-cosign-vuln-alpine-310.json")
    statement = envelope_statement(envelope(vuln_statement(OTHER, predicate)), "e")
    assert statement is not None
    report = statement_report(statement, OTHER, "e")
    assert report is not None
    assert ids(report) == {"CVE-2021-36159": Severity.CRITICAL}


def test_dsse_payloads_in_url_safe_unpadded_base64_are_read() -> None:
    predicate = doc("trivy-cosign-vuln-alpine-310.json")
    wrapped = envelope(vuln_statement(OTHER, predicate))
    raw = base64.b64decode(wrapped["payload"])
    wrapped["payload"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert envelope_statement(wrapped, "e") is not None


def test_envelopes_are_read_strictly() -> None:
    good = load_json(fixture("cosign-vuln-envelope.json"), "e")
    extra = {**good, "note": "x"}
    with pytest.raises(VulnerabilityReportError, match="not note"):
        envelope_statement(extra, "e")
    with pytest.raises(VulnerabilityReportError, match="payload is not base64"):
        envelope_statement({**good, "payload": "not base64!"}, "e")
    other = envelope({"x": 1}, payload_type="text/plain")
    assert envelope_statement(other, "e") is None
    with pytest.raises(VulnerabilityReportError, match="not an in-toto Statement"):
        envelope_statement(envelope({"_type": "x"}), "e")
    bad = copy.deepcopy(good)
    bad["signatures"] = {}
    with pytest.raises(VulnerabilityReportError, match="signatures is an object"):
        envelope_statement(bad, "e")


def test_sigstore_bundles_give_their_envelope() -> None:
    good = load_json(fixture("cosign-vuln-envelope.json"), "e")
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": good}
    assert bundle_envelope(bundle, "b") == good
    assert bundle_envelope({"messageSignature": {}}, "b") is None


# ----------------------------------------------------------------------------- the command


def test_the_scanner_command_is_split_without_a_shell() -> None:
    scanner = scanner_command("trivy image --format json --input='a b' {ref}", timeout=5)
    assert scanner.name == "trivy"
    assert scanner.command("r.example/app@sha256:1; rm -rf /") == [
        "trivy",
        "image",
        "--format",
        "json",
        "--input=a b",
        "r.example/app@sha256:1; rm -rf /",
    ]
    assert scanner_command("/opt/bin/grype {ref} -o=json").name == "grype"
    assert scanner_command("scan --image={ref}").command("x@sha256:1") == [
        "scan",
        "--image=x@sha256:1",
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "is empty"),
        ("trivy image --format json", "has no {ref}"),
        ("{ref}", "has no {ref}"),  # the image is no program
        ("trivy 'image {ref}", "cannot be split"),
    ],
)
def test_unusable_scanner_commands_are_refused(template: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scanner_command(template)


def test_the_timeout_is_bounded() -> None:
    with pytest.raises(UsageError, match="outside"):
        scanner_command("trivy {ref}", timeout=0)
    with pytest.raises(UsageError, match="outside"):
        scanner_command("trivy {ref}", timeout=86401)


def test_every_error_is_an_imgctl_error() -> None:
    assert issubclass(VulnerabilityReportError, ImgctlError)
