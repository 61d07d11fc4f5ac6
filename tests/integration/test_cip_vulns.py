"""`imgctl cip --vuln-severity-threshold` refuses sources with vulnerabilities (issue 19 item 3).

Real registries: docker-registry 2.8 (no referrers API: referrers are listed in the
``sha256-<hex>`` fallback index) and the embedded registry (the referrers API). Reports are real
scanner output (tests/data/vulns/README.md), attached the way their tools attach them: an OCI
referrer with the report's artifact type and the report as its layer, and cosign's ``.att`` tag
holding a DSSE envelope of the vulnerability predicate. Everything is pushed with plain HTTP
(httpx), never with imgctl's client; what was promoted is checked the same way. The scanner
command is a real process: a small script the test writes, which prints a real Trivy report,
crashes, hangs or prints garbage depending on the image it is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgctl.errors import VulnerabilityReportError
from imgctl.oci import Reference
from imgctl.promotion.vulns import run_scanner, scanner_command

from ..conftest import IMGCTL
from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.registry import Registry
from ..support.skopeo import push_layout
from ..support.vulns import fixture, fixture_dir

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST_ACCEPT = ",".join(
    [OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json"]
)
DSSE = "application/vnd.dsse.envelope.v1+json"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
SARIF = "application/sarif+json"
TRIVY = "application/vnd.aquasec.trivy.report+json"


# ----------------------------------------------------------------------------- plain HTTP


def push_blob(host: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = httpx.post(f"http://{host}/v2/{repository}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    url = httpx.URL(location if location.startswith("http") else f"http://{host}{location}")
    done = httpx.put(
        url.copy_add_param("digest", digest),  # beside the upload's own state parameters
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert done.status_code == 201, done.text
    return digest


def put_manifest(
    host: str, repository: str, reference: str, body: bytes, media_type: str
) -> httpx.Response:
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response


def head_manifest(host: str, repository: str, reference: str) -> httpx.Response:
    return httpx.head(
        f"http://{host}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=30,
    )


def attach_report(
    host: str, repository: str, digest: str, artifact_type: str, report: bytes
) -> str:
    """An OCI 1.1 referrer of ``digest`` (empty config, the report as its one layer); where the
    registry does not take the subject (no OCI-Subject answer), the fallback index too, as
    oras and cosign write it."""
    subject = head_manifest(host, repository, digest)
    assert subject.status_code == 200
    config = push_blob(host, repository, b"{}")
    layer = push_blob(host, repository, report)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer, "size": len(report)}],
            "subject": {
                "mediaType": subject.headers["content-type"],
                "digest": digest,
                "size": int(subject.headers["content-length"]),
            },
        }
    ).encode()
    referrer = "sha256:" + hashlib.sha256(body).hexdigest()
    answer = put_manifest(host, repository, referrer, body, OCI_MANIFEST)
    if "oci-subject" not in answer.headers:
        tag = digest.replace(":", "-")
        current = httpx.get(
            f"http://{host}/v2/{repository}/manifests/{tag}",
            headers={"Accept": OCI_INDEX},
            timeout=30,
        )
        entries = current.json()["manifests"] if current.status_code == 200 else []
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": referrer,
                "size": len(body),
                "artifactType": artifact_type,
            }
        )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        put_manifest(host, repository, tag, json.dumps(index).encode(), OCI_INDEX)
    return referrer


def vuln_envelope(name: str, digest: str, predicate: Any) -> bytes:
    """cosign attest --type vuln's layer: a DSSE envelope of the in-toto statement (the gate
    reads what it says; the signature is the provenance phase's business)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": VULN,
        "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicate": predicate,
    }
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(os.urandom(71)).decode()}],
        }
    ).encode()


def attach_attestation(host: str, repository: str, digest: str, envelope: bytes) -> None:
    """cosign's layout: one DSSE layer under ``sha256-<hex>.att`` (INTEROP.md section 10)."""
    layer = push_blob(host, repository, envelope)
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer]},
            "config": {},
        }
    ).encode()
    config_digest = push_blob(host, repository, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": [
                {
                    "mediaType": DSSE,
                    "size": len(envelope),
                    "digest": layer,
                    "annotations": {"predicateType": VULN},
                }
            ],
        }
    ).encode()
    put_manifest(host, repository, digest.replace(":", "-") + ".att", body, OCI_MANIFEST)


# ----------------------------------------------------------------------------- cip


def cip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    return subprocess.run(
        [IMGCTL, "cip", "--rate-limit", "2000", "--burst", "100", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def write_manifest(path: Path, source: str, destination: str, digests: dict[str, str]) -> Path:
    document = {
        "registries": [{"name": source, "src": True}, {"name": destination}],
        "images": [{"name": name, "dmap": {d: ["v1"]}} for name, d in sorted(digests.items())],
    }
    path.write_text(json.dumps(document))
    return path


@dataclass
class Source:
    host: str
    digests: dict[str, str]  # image -> digest (repository staging/<image>)

    @property
    def name(self) -> str:
        return f"{self.host}/staging"

    def image(self, name: str) -> str:
        return f"{self.host}/staging/{name}@{self.digests[name]}"


def push_images(
    host: str, names: list[str], layouts: Callable[..., Any], start: int
) -> dict[str, str]:
    digests = {}
    for number, name in enumerate(names):
        built = layouts(tag="v1", platforms=None, layers=1, layer_size=3_000 + start + number)
        push_layout(built.oci_ref, f"{host}/staging/{name}:v1")
        digests[name] = built.digest
    return digests


ATTACHED = ["clean", "medium", "critical", "sarif", "attested", "broken"]


@pytest.fixture(scope="module")
def attached(registries: Callable[..., Registry], layouts: Callable[..., Any]) -> Source:
    """docker-registry holding one image per case, its reports attached as the tools do."""
    registry = registries()
    source = Source(registry.host, push_images(registry.host, ATTACHED, layouts, 0))
    host, d = registry.host, source.digests
    attach_report(host, "staging/medium", d["medium"], TRIVY, fixture("trivy-alpine-310.json"))
    attach_report(
        host,
        "staging/critical",
        d["critical"],
        TRIVY,
        fixture("trivy-alpine-39-high-critical.json"),
    )
    # A second, clean report beside it changes nothing: the worst finding decides.
    attach_report(host, "staging/critical", d["critical"], SARIF, fixture("trivy-alpine-310.sarif"))
    attach_report(host, "staging/sarif", d["sarif"], SARIF, fixture("grype-image.sarif"))
    record = json.loads(fixture("trivy-cosign-vuln-alpine-310.json"))
    attach_attestation(
        host,
        "staging/attested",
        d["attested"],
        vuln_envelope(source.image("attested"), d["attested"], record),
    )
    attach_report(host, "staging/broken", d["broken"], SARIF, b"<html>not a report</html>")
    return source


def promoted(host: str, image: str) -> bool:
    found = head_manifest(host, image, "v1")
    assert found.status_code in (200, 404), found.text
    return found.status_code == 200


def verdicts(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    document = json.loads(result.stdout)
    return {
        v["image"].split("/staging/")[1].split("@")[0]: v
        for v in document["vulnerabilities"]["images"]
    }


def test_attached_reports_at_or_above_the_threshold_are_refused_the_rest_promoted(
    attached: Source, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    destination = registries()
    manifest = write_manifest(
        tmp_path / "m.json", attached.name, destination.host, attached.digests
    )
    done = cip(
        "--manifest", str(manifest), "--confirm", "--vuln-severity-threshold", "4", "-o", "json"
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    found = verdicts(done)
    assert {name: v["status"] for name, v in found.items()} == {
        "clean": "passed",
        "medium": "passed",
        "critical": "refused",
        "sarif": "refused",
        "attested": "refused",
        "broken": "error",
    }
    # The plan shows counts by severity, every level.
    assert found["medium"]["counts"] == {
        "CRITICAL": 0,
        "HIGH": 0,
        "MEDIUM": 2,
        "LOW": 0,
        "MINIMAL": 0,
        "UNSPECIFIED": 0,
    }
    assert found["clean"]["reports"] == []
    critical = found["critical"]
    assert critical["highest"] == "CRITICAL"
    assert [b["id"] for b in critical["blocking"]] == ["CVE-2019-14697"]
    assert len(critical["reports"]) == 2  # the Trivy JSON and the SARIF referrer
    assert critical["counts"]["CRITICAL"] == 1
    assert critical["counts"]["MEDIUM"] == 2
    assert found["attested"]["blocking"][0]["id"] == "CVE-2021-36159"
    assert ".att layer 0 (cosign vuln attestation)" in found["attested"]["reports"][0]
    assert "is not JSON" in found["broken"]["reason"]
    assert "application/sarif+json" in found["broken"]["reason"]

    results = {
        r["destination"].split("/")[-1].split(":")[0]: r for r in json.loads(done.stdout)["results"]
    }
    assert results["clean"]["ok"]
    assert results["medium"]["ok"]
    for name in ("critical", "sarif", "attested", "broken"):
        assert not results[name]["ok"]
        assert "vulnerability gate" in results[name]["error"]
        assert not promoted(destination.host, name), name
    assert "CVE-2019-14697 (CRITICAL, musl 1.1.20-r4)" in results["critical"]["error"]
    assert "highest CRITICAL (5)" in results["critical"]["error"]
    assert promoted(destination.host, "clean")
    assert promoted(destination.host, "medium")


def test_the_dry_run_shows_counts_and_refusals_and_writes_nothing(
    attached: Source, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    destination = registries()
    manifest = write_manifest(
        tmp_path / "m.json", attached.name, destination.host, attached.digests
    )
    done = cip("--manifest", str(manifest), "--vuln-severity-threshold", "5")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert (
        "vulnerability gate (at or above CRITICAL (5)): 6 source(s) scanned, 3 passed, "
        "2 refused, 1 could not be judged" in out
    )
    assert f"passed    {attached.image('medium')}: 2 MEDIUM, highest MEDIUM (1 report)" in out
    assert f"passed    {attached.image('sarif')}: 2 HIGH, highest HIGH (1 report)" in out
    assert f"passed    {attached.image('clean')}: no vulnerabilities (0 reports)" in out
    assert (
        f"refused   {attached.image('critical')}: 1 CRITICAL, 2 MEDIUM, highest CRITICAL "
        "(2 reports)" in out
    )
    assert (
        f"refused   {attached.image('critical')}: 1 vulnerability at or above CRITICAL (5) "
        "(highest CRITICAL (5)): CVE-2019-14697 (CRITICAL, musl 1.1.20-r4)" in done.stderr
    )
    assert f"refused   {attached.image('broken')}: vulnerabilities cannot be judged" in done.stderr
    assert not any(promoted(destination.host, name) for name in ATTACHED)

    # At MEDIUM the clean-at-HIGH images are refused too; the gate off refuses nothing.
    strict = cip("--manifest", str(manifest), "--vuln-severity-threshold", "3", "-o", "json")
    assert verdicts(strict)["medium"]["status"] == "refused"
    off = cip("--manifest", str(manifest), "-o", "json")
    assert off.returncode == 0, off.stderr
    assert "vulnerabilities" not in json.loads(off.stdout)


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRegistry]:
    server = start_embedded(tmp_path_factory.mktemp("embedded") / "root", request.addfinalizer)
    yield server
    assert "Traceback" not in server.output()


def test_referrers_from_the_referrers_api_are_read(
    embedded: EmbeddedRegistry, layouts: Callable[..., Any], tmp_path: Path
) -> None:
    source = Source(
        embedded.host, push_images(embedded.host, ["api-sarif", "api-grype"], layouts, 50)
    )
    d = source.digests
    attach_report(
        embedded.host, "staging/api-sarif", d["api-sarif"], SARIF, fixture("trivy-alpine-310.sarif")
    )
    attach_report(
        embedded.host,
        "staging/api-grype",
        d["api-grype"],
        "application/vnd.anchore.grype+json",
        fixture("grype-image.json"),
    )
    # The embedded registry answers OCI-Subject: no fallback index was written.
    assert (
        head_manifest(
            embedded.host, "staging/api-sarif", d["api-sarif"].replace(":", "-")
        ).status_code
        == 404
    )
    manifest = write_manifest(tmp_path / "m.json", source.name, f"{embedded.host}/prod", d)
    done = cip("--manifest", str(manifest), "--vuln-severity-threshold", "4", "-o", "json")
    found = verdicts(done)
    assert found["api-sarif"]["status"] == "passed"
    assert found["api-sarif"]["counts"]["MEDIUM"] == 2
    assert found["api-grype"]["status"] == "refused"
    assert [b["id"] for b in found["api-grype"]["blocking"]] == ["CVE-1999-0002"]
    assert found["api-grype"]["blocking"][0]["package"] == "package-2"


# ----------------------------------------------------------------------------- the scanner


SCANNER = """#!{python}
import os, subprocess, sys, time
ref = sys.argv[-1]
fixtures = {fixtures!r}
if "crash" in ref:
    print("2026-01-01T00:00:00Z  INFO  Need to update DB", file=sys.stderr)
    print("2026-01-01T00:00:01Z  FATAL  init error: DB error: failed to download "
          "vulnerability DB", file=sys.stderr)
    sys.exit(3)
if "slow" in ref:
    child = subprocess.Popen(["sleep", "120"])
    with open({pids!r}, "w") as pids:
        pids.write(f"{{os.getpid()}} {{child.pid}}")
    time.sleep(120)
if "garbage" in ref:
    print("Scanning... 100%  (no JSON here)")
    sys.exit(0)
name = "trivy-alpine-39-high-critical.json" if "critical" in ref else "trivy-alpine-310.json"
with open(os.path.join(fixtures, name), "rb") as report:
    sys.stdout.buffer.write(report.read())
"""


def write_scanner(directory: Path) -> tuple[Path, Path]:
    pids = directory / "slow.pids"
    script = directory / "fakescan"
    script.write_text(
        SCANNER.format(python=sys.executable, fixtures=str(fixture_dir()), pids=str(pids))
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, pids


def gone(pid: int) -> bool:
    """Killed: no such process, or a zombie waiting for init (PID 1 in a container may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_scanner_variants_fail_their_own_image_and_the_others_are_promoted(
    registries: Callable[..., Registry], layouts: Callable[..., Any], tmp_path: Path
) -> None:
    names = ["scan-ok", "scan-critical", "scan-crash", "scan-slow", "scan-garbage"]
    registry, destination = registries(), registries()
    source = Source(registry.host, push_images(registry.host, names, layouts, 100))
    scanner, pids = write_scanner(tmp_path)
    manifest = write_manifest(tmp_path / "m.json", source.name, destination.host, source.digests)
    began = time.monotonic()
    done = cip(
        "--manifest",
        str(manifest),
        "--confirm",
        "--vuln-severity-threshold",
        "4",
        "--vuln-scanner",
        f"{scanner} image --format json {{ref}}",
        "--vuln-scanner-timeout",
        "3",
        "-o",
        "json",
    )
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    found = verdicts(done)
    assert {n: v["status"] for n, v in found.items()} == {
        "scan-ok": "passed",
        "scan-critical": "refused",
        "scan-crash": "error",
        "scan-slow": "error",
        "scan-garbage": "error",
    }
    assert found["scan-ok"]["reports"] == [
        "scanner fakescan: Trivy JSON from Trivy dev (4 findings)"
    ]
    assert found["scan-critical"]["blocking"][0]["id"] == "CVE-2019-14697"
    assert found["scan-crash"]["reason"] == (
        f"vulnerabilities cannot be judged: scanner 'fakescan' failed on "
        f"{source.image('scan-crash')}: exit status 3: 2026-01-01T00:00:00Z INFO Need to update "
        "DB | 2026-01-01T00:00:01Z FATAL init error: DB error: failed to download vulnerability DB"
    )
    assert found["scan-slow"]["reason"] == (
        f"vulnerabilities cannot be judged: scanner 'fakescan' on {source.image('scan-slow')} "
        "did not finish in 3 s; stopped it"
    )
    assert found["scan-garbage"]["reason"].startswith(
        "vulnerabilities cannot be judged: the output of scanner 'fakescan' on "
        f"{source.image('scan-garbage')} is not JSON"
    )
    # The hung scanner and the process it started were killed, not waited for.
    assert took < 60, took
    scanner_pid, child_pid = (int(p) for p in pids.read_text().split())
    assert gone(scanner_pid)
    assert gone(child_pid)

    assert promoted(destination.host, "scan-ok")
    for name in ("scan-critical", "scan-crash", "scan-slow", "scan-garbage"):
        assert not promoted(destination.host, name), name
    results = json.loads(done.stdout)["results"]
    assert sum(r["ok"] for r in results) == 1
    assert len(results) == 5


def test_scanner_flags_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.json", "127.0.0.1:9/staging", "127.0.0.1:9", {})
    no_threshold = cip("--manifest", str(manifest), "--vuln-scanner", "trivy image {ref}")
    assert no_threshold.returncode == 2
    assert "--vuln-scanner needs --vuln-severity-threshold 1..5" in no_threshold.stderr
    no_ref = cip(
        "--manifest",
        str(manifest),
        "--vuln-severity-threshold",
        "4",
        "--vuln-scanner",
        "trivy image",
    )
    assert no_ref.returncode == 2
    assert "has no {ref} argument" in no_ref.stderr
    too_high = cip("--manifest", str(manifest), "--vuln-severity-threshold", "6")
    assert too_high.returncode == 2


IMAGE = Reference.parse("127.0.0.1:5000/staging/app@sha256:" + "ab" * 32)


async def test_a_scanner_printing_too_much_is_stopped(tmp_path: Path) -> None:
    scanner, _ = write_scanner(tmp_path)
    command = scanner_command(f"{scanner} {{ref}}", timeout=30, max_output=1000)
    with pytest.raises(VulnerabilityReportError, match="printed more than 1000 bytes; stopped it"):
        await run_scanner(command, IMAGE)
    report = await run_scanner(scanner_command(f"{scanner} {{ref}}", timeout=30), IMAGE)
    assert len(report.findings) == 4


async def test_a_scanner_that_cannot_start_is_one_error(tmp_path: Path) -> None:
    command = scanner_command(f"{tmp_path / 'no-such-scanner'} {{ref}}")
    with pytest.raises(VulnerabilityReportError, match="'no-such-scanner' cannot be started for"):
        await run_scanner(command, IMAGE)


ESCAPING = """#!{python}
import subprocess, sys, time
# A helper that leaves the scanner's session and keeps its stdout open, then the scanner hangs:
# killing the scanner's group does not close the pipe.
child = subprocess.Popen(["sleep", "60"], start_new_session=True)
with open({pids!r}, "w") as pids:
    pids.write(str(child.pid))
print("{{", end="", flush=True)
time.sleep(60)
"""


async def test_a_process_escaping_the_scanners_group_cannot_hold_the_gate(tmp_path: Path) -> None:
    pids = tmp_path / "escaped.pid"
    script = tmp_path / "escaping"
    script.write_text(ESCAPING.format(python=sys.executable, pids=str(pids)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    command = scanner_command(f"{script} {{ref}}", timeout=2)
    began = time.monotonic()
    try:
        with pytest.raises(VulnerabilityReportError, match="did not finish in 2 s; stopped it"):
            await run_scanner(command, IMAGE)
        assert time.monotonic() - began < 15
    finally:
        escaped = int(pids.read_text())
        if not gone(escaped):
            os.kill(escaped, 9)
