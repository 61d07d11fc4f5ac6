"""`imgctl cip` as kpromo's pipeline: phases, provenance, attestations, the request budget.

Real docker-registry processes (staging, primary, mirror); the source images' attestations are
made with imgctl.trust.attest_image (a SLSA provenance statement signed with a test key) and
broken on purpose by rewriting the registry's bytes. What cip writes is read back with the
test-side reader of test_server_attestations (skopeo for the ``.att`` manifest, plain HTTP for
the envelope, the DSSE signature checked with pyca/cryptography over the PAE), sharing no code
with imgctl.trust. Counting proxies stamp every request's arrival for the budget test
(issues 19 items 1, 2, 4 and 5).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from imgctl.oci import Digest, Reference
from imgctl.remote import ClientOptions, RegistryClient

from ..conftest import IMGCTL
from ..support.cosign import tags_of
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, push_layout
from .test_cip_signing import Key, cip, make_key, write_manifest
from .test_server_attestations import PROMOTION, attestations

SLSA_V1 = "https://slsa.dev/provenance/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PHASES = ["setup", "plan", "provenance", "validate", "promote", "sign", "attest"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: make_key(directory, name) for name in ("release", "builder", "other")}


@dataclass
class Staging:
    registry: Registry
    digests: dict[str, str]  # image -> digest of its v1

    @property
    def name(self) -> str:
        return f"{self.registry.host}/staging"

    def image(self, name: str) -> str:
        return f"{self.name}/{name}@{self.digests[name]}"

    def manifest(self, path: Path, destinations: list[str], *names: str) -> Path:
        images = {name: {self.digests[name]: ["v1"]} for name in names}
        return write_manifest(path, self.name, destinations, images)


def push_images(
    registry: Registry, layouts: Callable[..., Any], names: list[str], size: int
) -> dict[str, str]:
    digests = {}
    for number, name in enumerate(names):
        built = layouts(tag="v1", platforms=None, layers=1, layer_size=size + number)
        push_layout(built.oci_ref, f"{registry.host}/staging/{name}:v1")
        digests[name] = built.digest
    return digests


def statement(subject: str, digest: str, predicate_type: str = SLSA_V1) -> dict[str, Any]:
    """A build's in-toto statement about ``subject``@``digest`` (not imgctl's own kind)."""
    predicate: dict[str, Any] = {
        "buildDefinition": {
            "buildType": "https://example.com/test-build/v1",
            "externalParameters": {"repository": "https://example.com/app"},
        },
        "runDetails": {"builder": {"id": "https://example.com/builder"}},
    }
    if predicate_type == CYCLONEDX:
        predicate = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


async def attest(staging: Staging, name: str, key: Key, predicate_type: str = SLSA_V1) -> None:
    """Attach a build attestation, signed with ``key``, to a staging image."""
    from imgctl.trust import attest_image, load_signer

    ref = Reference.parse(staging.image(name))
    async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
        await attest_image(
            client,
            ref,
            load_signer(str(key.private)),
            statement(ref.name, staging.digests[name], predicate_type),
            predicate_type=predicate_type,
        )


async def rewrite_attestation(
    staging: Staging, name: str, *, tamper: bool = False, copy_from: str | None = None
) -> None:
    """Tamper with an image's attestation envelope, or give it another image's ``.att``.

    Tampering changes the statement inside the envelope and keeps its signature; copying puts
    a well-signed attestation of another digest under this digest's ``.att`` tag.
    """
    origin = copy_from or name
    tag = staging.digests[origin].replace(":", "-") + ".att"
    source = Reference.parse(f"{staging.name}/{origin}:{tag}")
    target = Reference.parse(f"{staging.name}/{name}:{staging.digests[name].replace(':', '-')}.att")
    async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
        fetched = await client.get_manifest(source)
        manifest = json.loads(fetched.data)
        blobs: dict[str, bytes] = {}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            digest = Digest.parse(descriptor["digest"])
            blobs[str(digest)] = b"".join(
                [chunk async for chunk in client.iter_blob(source, digest)]
            )
        if tamper:
            layer = manifest["layers"][0]
            envelope = json.loads(blobs[layer["digest"]])
            changed = json.loads(base64.b64decode(envelope["payload"]))
            changed["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example.com"
            envelope["payload"] = base64.b64encode(json.dumps(changed).encode()).decode()
            data = json.dumps(envelope).encode()
            layer["digest"], layer["size"] = str(Digest.of(data)), len(data)
            blobs[layer["digest"]] = data
        for blob, data in blobs.items():
            await client.push_blob(target, Digest.parse(blob), data, len(data))
        await client.put_manifest(target, json.dumps(manifest).encode(), OCI_MANIFEST)


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The phase events of a ``-o json`` run (JSON lines on stderr)."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def ended(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """Each phase's last event (its end, or its skip)."""
    return {e["phase"]: e for e in events(result) if e["status"] != "started"}


def phase_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("phase ")]


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# ----------------------------------------------------------------------------- phases


def test_phases_are_printed_in_order_with_durations_and_a_dry_run_stops_after_validate(
    registries: Callable[..., Registry], layouts: Callable[..., Any], tmp_path: Path
) -> None:
    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, ["one", "two"], 11_000)
    primary = registries()
    manifest = staging.manifest(tmp_path / "m.yaml", [primary.host], "one", "two")

    dry = cip("--manifest", str(manifest))
    assert dry.returncode == 0, dry.stderr
    lines = phase_lines(dry)
    # Started and ended for the phases that ran, one line for each skipped one.
    assert [line.split(":")[0].removeprefix("phase ") for line in lines] == [
        *("setup", "setup", "plan", "plan", "provenance", "provenance"),
        *("validate", "promote", "sign", "attest"),
    ]
    assert lines[0] == "phase setup: started"
    assert lines[1].startswith("phase setup: ok (")
    assert lines[1].endswith(" s): 1 manifest(s), 2 image(s), 2 edge(s)")
    assert lines[3].startswith("phase plan: ok (")
    assert "2 edge(s): 0 present, 2 to copy" in lines[3]
    assert lines[5].startswith("phase provenance: warning (")
    assert lines[5].endswith(
        "2 source(s): 0 verified, 2 without attestation, 0 not verifiable, 0 refused; 2 warning(s)"
    )
    assert lines[6] == (
        "phase validate: skipped: no --verify-key, --certificate-identity or "
        "--vuln-severity-threshold"
    )
    assert lines[7:] == [
        f"phase {p}: skipped: dry run (add --confirm to promote)"
        for p in ("promote", "sign", "attest")
    ]
    for line in (lines[1], lines[3], lines[5]):
        seconds = float(line.split("(", 1)[1].split(" s)", 1)[0])
        assert 0 <= seconds < 60
    assert tags_of(primary.host, "one") == []  # the dry run wrote nothing

    as_json = cip("--manifest", str(manifest), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    stream = events(as_json)
    assert [(e["phase"], e["status"]) for e in stream] == [
        ("setup", "started"),
        ("setup", "ok"),
        ("plan", "started"),
        ("plan", "ok"),
        ("provenance", "started"),
        ("provenance", "warning"),
        ("validate", "skipped"),
        ("promote", "skipped"),
        ("sign", "skipped"),
        ("attest", "skipped"),
    ]
    times = [datetime.fromisoformat(e["time"]) for e in stream]
    assert times == sorted(times)
    plan = stream[3]
    assert plan["duration"] >= 0
    assert plan["requests"] > 0
    assert plan["failed"] == []
    provenance = stream[5]
    assert provenance["warningCount"] == 2
    assert sorted(provenance["warnings"]) == sorted(
        f"{staging.image(n)}: no attestation found; promoted anyway (verify-if-present)"
        for n in ("one", "two")
    )
    # The plan's referrer listing showed no attestation: the phase asked the registry nothing.
    assert provenance["requests"] == 0
    document = report(as_json)  # stdout: the report alone, as before
    assert document["summary"]["copy"] == 2
    assert [p["phase"] for p in document["phases"]] == PHASES
    assert {r["status"] for r in document["provenance"]["results"]} == {"absent"}


def test_on_a_terminal_the_phases_are_a_rich_display(
    registries: Callable[..., Registry], layouts: Callable[..., Any], tmp_path: Path
) -> None:
    from .test_cli_keys import _run_on_a_terminal

    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, ["tty"], 16_000)
    primary = registries()
    manifest = staging.manifest(tmp_path / "m.yaml", [primary.host], "tty")
    code, seen = _run_on_a_terminal(
        ["cip", "--manifest", str(manifest), "--rate-limit", "2000"], [], tmp_path
    )
    assert code == 0, seen
    text = seen.decode(errors="replace")
    # Rich drew on the terminal (escape sequences: colours, the spinner's cursor moves)...
    assert "\x1b[" in text
    # ...and left each ended phase's line, in order; no plain "started" lines.
    ended_at = [text.index(f"phase {p}: ") for p in PHASES]
    assert ended_at == sorted(ended_at)
    assert "phase plan: ok (" in text
    assert "phase promote: skipped: dry run (add --confirm to promote)" in text
    assert "phase setup: started" not in text
    assert "dry run (add --confirm to promote): 1 edges" in text


def test_parse_only_stops_after_setup(registries: Callable[..., Registry], tmp_path: Path) -> None:
    missing = "sha256:" + "ab" * 32
    manifest = write_manifest(
        tmp_path / "m.yaml", "127.0.0.1:1/staging", ["127.0.0.1:2"], {"x": {missing: ["v1"]}}
    )
    result = cip("--manifest", str(manifest), "--parse-only")
    assert result.returncode == 0, result.stderr
    lines = phase_lines(result)
    assert lines[0] == "phase setup: started"
    assert lines[1].startswith("phase setup: ok (")
    assert lines[2:] == [
        f"phase {p}: skipped: --parse-only: stopped after parsing" for p in PHASES[1:]
    ]
    assert "parsed 1 manifest(s), 1 image(s), 1 digest(s): 1 edges" in result.stdout
    as_json = cip("--manifest", str(manifest), "--parse-only", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert [e["status"] for e in events(as_json)] == ["started", "ok"] + ["skipped"] * 6
    assert report(as_json)["edges"] == 1  # nothing was read: the registries do not exist

    broken = tmp_path / "broken.yaml"
    broken.write_text("registries: [\n")
    failed = cip("--manifest", str(broken), "-o", "json")
    assert failed.returncode == 2
    assert [(e["phase"], e["status"]) for e in events(failed)] == [
        ("setup", "started"),
        ("setup", "failed"),
    ]
    assert failed.stdout == ""


def test_an_edge_failing_validate_does_not_stop_the_others_promote_sign_and_attest(
    registries: Callable[..., Registry],
    layouts: Callable[..., Any],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    from imgctl.trust import load_signer, sign_image

    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, ["good", "bare"], 12_000)

    async def sign() -> None:
        async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
            ref = Reference.parse(staging.image("good"))
            await sign_image(client, ref, load_signer(str(keys["builder"].private)))

    asyncio.run(sign())
    primary = registries()
    manifest = staging.manifest(tmp_path / "m.yaml", [primary.host], "good", "bare")
    args = ["--manifest", str(manifest), "--confirm", "-o", "json"]
    trust = ["--verify-key", str(keys["builder"].public)]
    result = cip(*args, *trust, "--sign-key", str(keys["release"].private))
    assert result.returncode == 1, result.stderr
    phases = ended(result)
    assert [phases[p]["status"] for p in PHASES] == [
        "ok",
        "ok",
        "warning",
        "failed",
        "ok",
        "ok",
        "ok",
    ]
    [failure] = phases["validate"]["failed"]
    assert failure["edge"] == f"{primary.host}/bare:v1"
    assert failure["reason"].startswith(f"{staging.image('bare')}: it has no signature")
    assert phases["promote"]["summary"].startswith("promoted 1 of 1 edge(s)")
    document = report(result)
    assert [f["phase"] for f in document["failed"]] == ["validate"]
    [signed] = document["signing"]["results"]
    assert signed["status"] == "signed"
    assert "/good@" in signed["image"]
    [attested] = document["attestation"]["results"]
    assert attested["status"] == "attested"
    assert attested["image"] == f"{primary.host}/good@{staging.digests['good']}"
    assert digest_of(f"{primary.host}/good:v1") == staging.digests["good"]
    assert tags_of(primary.host, "bare") == []


# ----------------------------------------------------------------------------- provenance


@pytest.fixture(scope="module")
def attested(
    registries: Callable[..., Registry], layouts: Callable[..., Any], keys: dict[str, Key]
) -> Staging:
    """Staging images, all signed by builder, with their attestations.

    valid: a SLSA provenance by builder; tampered: its statement changed after signing;
    elsewhere: carries valid's attestation (for another digest); bom: a valid CycloneDX
    attestation only; bare: none.
    """
    names = ["valid", "tampered", "elsewhere", "bom", "bare"]
    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, names, 13_000)

    async def make() -> None:
        from imgctl.trust import load_signer, sign_image

        # The build signs every image too: --verify-key checks signatures (validate) and
        # attestations (provenance) with the same keys.
        async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
            signer = load_signer(str(keys["builder"].private))
            for name in names:
                await sign_image(client, Reference.parse(staging.image(name)), signer)
        await attest(staging, "valid", keys["builder"])
        await attest(staging, "tampered", keys["builder"])
        await rewrite_attestation(staging, "tampered", tamper=True)
        await rewrite_attestation(staging, "elsewhere", copy_from="valid")
        await attest(staging, "bom", keys["builder"], CYCLONEDX)

    asyncio.run(make())
    return staging


def test_provenance_is_verified_if_present(
    attested: Staging,
    registries: Callable[..., Registry],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    primary = registries()
    names = ["valid", "tampered", "elsewhere", "bom", "bare"]
    manifest = attested.manifest(tmp_path / "m.yaml", [primary.host], *names)
    trust = ["--verify-key", str(keys["builder"].public)]

    dry = cip("--manifest", str(manifest), *trust)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    refused = [line for line in dry.stderr.splitlines() if line.startswith("refused")]
    assert sorted(line.split(": ", 1)[0] for line in refused) == sorted(
        f"refused   {attested.image(n)}" for n in ("tampered", "elsewhere")
    )
    assert (
        "provenance checked on 5 source(s): 2 verified, 1 without verified attestation "
        "(promoted anyway: verify-if-present), 2 refused" in dry.stdout
    )
    assert "imgctl: warning: no attestation on 1 source(s)" in dry.stderr
    assert attested.image("bare") in dry.stderr
    assert tags_of(primary.host, "valid") == []

    done = cip("--manifest", str(manifest), *trust, "--confirm", "-o", "json")
    assert done.returncode == 1, done.stderr
    document = report(done)
    results = {r["destination"].split("/")[1].split(":")[0]: r for r in document["results"]}
    assert {n for n, r in results.items() if r["ok"]} == {"valid", "bom", "bare"}
    tampered = results["tampered"]["error"]
    assert tampered.startswith(
        f"not promoted: {attested.image('tampered')}: provenance: 1 of its 1 attestation(s) "
        f"did not verify (attestation 1 ({SLSA_V1}): "
    )
    assert "does not verify" in tampered
    elsewhere = results["elsewhere"]["error"]
    assert elsewhere == (
        f"not promoted: {attested.image('elsewhere')}: provenance: 1 of its 1 attestation(s) "
        f"did not verify (attestation 1 ({SLSA_V1}): statement is for "
        f"{attested.digests['valid']})"
    )
    verdicts = {
        r["image"].split("/")[2].split("@")[0]: r for r in document["provenance"]["results"]
    }
    assert {n: v["status"] for n, v in verdicts.items()} == {
        "valid": "verified",
        "bom": "verified",
        "bare": "absent",
        "tampered": "invalid",
        "elsewhere": "invalid",
    }
    [check] = verdicts["valid"]["attestations"]
    assert check["verified"] is True
    assert check["predicateType"] == SLSA_V1
    phases = ended(done)
    assert phases["provenance"]["status"] == "failed"
    assert phases["provenance"]["failedCount"] == 2
    assert phases["promote"]["summary"].startswith("promoted 3 of 3 edge(s)")
    assert digest_of(f"{primary.host}/valid:v1") == attested.digests["valid"]
    assert digest_of(f"{primary.host}/bare:v1") == attested.digests["bare"]
    assert tags_of(primary.host, "tampered") == tags_of(primary.host, "elsewhere") == []
    # The build attestation travelled with the image (a referrer).
    [copied] = attestations(primary.host, "valid", attested.digests["valid"])
    assert copied.annotations["predicateType"] == SLSA_V1


def test_require_provenance_refuses_images_without_a_valid_one(
    attested: Staging,
    registries: Callable[..., Registry],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    primary = registries()
    manifest = attested.manifest(tmp_path / "m.yaml", [primary.host], "valid", "bom", "bare")
    trust = ["--verify-key", str(keys["builder"].public)]
    done = cip("--manifest", str(manifest), *trust, "--require-provenance", "--confirm")
    assert done.returncode == 1, done.stderr
    failures = {
        line.split(": ", 1)[0]: line for line in done.stderr.splitlines() if "not promoted" in line
    }
    assert failures[f"failed    {primary.host}/bare:v1"].endswith(
        f"not promoted: {attested.image('bare')}: provenance: it has no attestation "
        "(--require-provenance)"
    )
    assert failures[f"failed    {primary.host}/bom:v1"].endswith(
        f"provenance: none of its 1 verified attestation(s) is SLSA provenance ({CYCLONEDX}) "
        "(--require-provenance)"
    )
    assert digest_of(f"{primary.host}/valid:v1") == attested.digests["valid"]
    assert tags_of(primary.host, "bare") == tags_of(primary.host, "bom") == []

    # With nothing to verify them with, provenance cannot be required.
    bare = cip("--manifest", str(manifest), "--require-provenance")
    assert bare.returncode == 2
    assert bare.stderr.strip() == (
        "imgctl: error: --require-provenance needs --verify-key or --certificate-identity to "
        "verify the attestations with"
    )


def test_without_trust_attestations_are_reported_not_verified(
    attested: Staging, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    primary = registries()
    manifest = attested.manifest(tmp_path / "m.yaml", [primary.host], "valid", "bare")
    result = cip("--manifest", str(manifest), "-o", "json")
    assert result.returncode == 0, result.stderr
    verdicts = {
        r["image"].split("/")[2].split("@")[0]: r for r in report(result)["provenance"]["results"]
    }
    assert verdicts["valid"]["status"] == "unverified"
    assert verdicts["valid"]["reason"].startswith(
        "1 attestation(s) found but not verified: no --verify-key or --certificate-identity"
    )
    assert verdicts["bare"]["status"] == "absent"
    assert ended(result)["provenance"]["warningCount"] == 2


# ----------------------------------------------------------------------------- attest


def test_attest_writes_one_promotion_attestation_per_digest_and_a_rerun_adds_none(
    attested: Staging,
    registries: Callable[..., Registry],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    from imgctl.trust import load_public_key

    primary, mirror = registries(), registries()
    digest = attested.digests["valid"]
    images = {"valid": {digest: ["v1", "stable"]}, "bare": {attested.digests["bare"]: ["v1"]}}
    manifest = write_manifest(
        tmp_path / "m.yaml", attested.name, [f"{primary.host}/prod", mirror.host], images
    )
    release = keys["release"]
    args = ["--manifest", str(manifest), "--confirm", "--sign-key", str(release.private)]
    done = cip(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    key_id = load_public_key(str(release.public)).key_id
    builder = f"urn:imgctl:cip:{key_id}"
    assert f"attested 2 of 2 promoted digest(s) in their primary registry as {builder}" in (
        done.stdout
    )
    phase = [line for line in phase_lines(done) if line.startswith("phase attest: ")]
    assert phase[0] == "phase attest: started"
    assert phase[1].startswith("phase attest: ok (")

    found = attestations(primary.host, "prod/valid", digest)
    # The build's attestation came along with the image; cip appended its own, once for two
    # tags.
    assert [a.annotations.get("predicateType") for a in found] == [SLSA_V1, PROMOTION]
    promotion = found[1]
    assert promotion.media_type == "application/vnd.dsse.envelope.v1+json"
    assert promotion.signed_by(release.key)
    assert not promotion.signed_by(keys["other"].key)
    statement = promotion.statement
    assert statement["subject"] == [
        {"name": f"{primary.host}/prod/valid", "digest": {"sha256": digest.split(":")[1]}}
    ]
    assert statement["predicateType"] == SLSA_V1
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == builder
    parameters = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert parameters["digest"] == digest
    assert parameters["source"]["repository"] == "staging/valid"
    assert parameters["destination"] == {"registry": primary.host, "repository": "prod/valid"}
    assert "internalParameters" not in statement["predicate"]["buildDefinition"]
    started = datetime.fromisoformat(run["metadata"]["startedOn"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(run["metadata"]["finishedOn"].replace("Z", "+00:00"))
    assert started <= finished
    assert len(attestations(primary.host, "prod/bare", attested.digests["bare"])) == 1
    # Mirrors get the image (and the build's attestation), not cip's attestations.
    assert [
        a.annotations.get("predicateType") for a in attestations(mirror.host, "valid", digest)
    ] == [SLSA_V1]
    assert attestations(mirror.host, "bare", attested.digests["bare"]) == []

    again = cip(*args, "-o", "json")
    assert again.returncode == 0, again.stderr
    assert report(again)["attestation"]["results"] == []  # nothing promoted, nothing attested

    # A new tag for the digest is promoted (add_tag): its attestation is found, not added.
    images["valid"][digest].append("v1.0")
    write_manifest(manifest, attested.name, [f"{primary.host}/prod", mirror.host], images)
    tagged = cip(*args, "-o", "json")
    assert tagged.returncode == 0, tagged.stderr
    [result] = report(tagged)["attestation"]["results"]
    assert result["status"] == "already-attested"
    assert result["image"] == f"{primary.host}/prod/valid@{digest}"
    assert len(attestations(primary.host, "prod/valid", digest)) == 2

    off = cip(*args, "--attest=false")
    assert off.returncode == 0, off.stderr
    assert "phase attest: skipped: --attest=false" in off.stdout


def test_an_attestation_that_cannot_be_written_fails_that_digest_only(
    registries: Callable[..., Registry],
    layouts: Callable[..., Any],
    proxy_for: Callable[[Registry], FaultProxy],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, ["kept", "refused"], 15_000)
    primary = registries()
    proxy = proxy_for(primary)
    # The primary refuses every attestation manifest of "refused" (its signature goes through).
    proxy.fail(500, 1_000, method="PUT", path=r"/v2/refused/manifests/sha256-[0-9a-f]{64}\.att$")
    manifest = staging.manifest(tmp_path / "m.yaml", [proxy.host], "kept", "refused")
    result = cip(
        *("--manifest", str(manifest), "--confirm", "--retries", "0", "-o", "json"),
        *("--sign-key", str(keys["release"].private)),
    )
    assert result.returncode == 1, result.stderr
    document = report(result)
    assert all(r["ok"] for r in document["results"])  # both promoted...
    assert {r["status"] for r in document["signing"]["results"]} == {"signed"}  # ...and signed
    outcomes = {
        r["image"].split("/")[1].split("@")[0]: r for r in document["attestation"]["results"]
    }
    assert outcomes["kept"]["status"] == "attested"
    assert outcomes["refused"]["status"] == "failed"
    assert "500" in outcomes["refused"]["error"] or "UNAVAILABLE" in outcomes["refused"]["error"]
    [failure] = document["failed"]
    assert failure["phase"] == "attest"
    assert failure["edge"] == f"{proxy.host}/refused:v1"
    assert failure["reason"].startswith(
        f"{proxy.host}/refused@{staging.digests['refused']}: not attested: "
    )
    assert ended(result)["attest"]["status"] == "failed"
    assert attestations(primary.host, "refused", staging.digests["refused"]) == []
    [kept] = attestations(primary.host, "kept", staging.digests["kept"])
    assert kept.signed_by(keys["release"].key)


# ----------------------------------------------------------------------------- budget


def test_promotion_gets_70_percent_of_the_rate_and_signing_all_of_it_after_promote(
    registries: Callable[..., Registry],
    layouts: Callable[..., Any],
    proxy_for: Callable[[Registry], FaultProxy],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    names = [f"app-{n}" for n in range(12)]
    staging = Staging(registries(), {})
    staging.digests = push_images(staging.registry, layouts, names, 14_000)
    source_proxy = proxy_for(staging.registry)
    primary = registries()
    primary_proxy = proxy_for(primary)
    images = {name: {staging.digests[name]: ["v1"]} for name in names}
    manifest = write_manifest(
        tmp_path / "m.yaml", f"{source_proxy.host}/staging", [primary_proxy.host], images
    )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    command = [
        *(IMGCTL, "cip", "--manifest", str(manifest), "--confirm", "-o", "json"),
        *("--sign-key", str(keys["release"].private), "--rate-limit", "40", "--burst", "2"),
    ]
    # test_cip_signing's cip() sets a high rate; this run needs 40 requests/s.
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    stream = events(result)
    window: dict[str, dict[bool, float]] = {}  # phase -> started? -> when
    for event in stream:
        at = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        window.setdefault(event["phase"], {})[event["status"] == "started"] = at
    arrivals = sorted(at for at, _, _ in source_proxy.arrivals + primary_proxy.arrivals)

    def seconds(phase: str) -> list[int]:
        """Requests in every one-second window starting at a request of ``phase``."""
        start, end = window[phase][True], window[phase][False]
        inside = [at for at in arrivals if start <= at <= end]
        return [sum(1 for b in inside if a <= b < a + 1) for a in inside if a + 1 <= end]

    promote, sign = seconds("promote"), seconds("sign")
    print(f"promote: {len(promote)} windows, busiest {max(promote)} requests/s")
    print(f"sign: {len(sign)} windows, busiest {max(sign)} requests/s")
    # While promoting, no second ever holds more than 70 % of 40 (and the burst of 1): the
    # signing share's 30 % is kept back, though nothing signs yet...
    assert 20 <= max(promote) <= 31
    # ...and once promote is done, signing sends at the whole rate (28 would be the
    # promotion share's, 12 the signing share's).
    assert 34 <= max(sign) <= 43
