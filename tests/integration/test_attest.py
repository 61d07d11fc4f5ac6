"""Promotion attestations against real registries: ``attest_image``, ``list_attestations`` and
``imgctl attestations`` / ``imgctl attest`` on docker-registry 2.8 (``.att`` tag only) and the
embedded registry (referrers API too).

What is checked from outside imgctl: the ``.att`` manifest and its layers are read back over
plain HTTP, and the envelope is verified by securesystemslib's own DSSE code with a key built
straight from the public PEM (tests/unit/test_attest.py does the same offline).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from imgctl.oci import Digest, Reference
from imgctl.remote import RegistryClient
from imgctl.trust import (
    DSSE_MEDIA_TYPE,
    PROMOTION_PREDICATE_TYPE,
    PromotionFacts,
    TrustPolicy,
    attest_image,
    list_attestations,
    load_public_key,
    load_signer,
    promotion_statement,
)

from ..conftest import IMGCTL, PushedImage
from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.registry import Registry
from ..support.skopeo import push_layout

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"


def _key(directory: Path, name: str) -> tuple[Path, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    key_path, pub_path = directory / f"{name}.pem", directory / f"{name}.pub"
    key_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("attest-keys")
    made: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in made:
            made[name] = _key(directory, name)
        return made[name]

    return get


def imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, timeout=120, check=False)


def att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def manifest_at(host: str, repository: str, tag: str) -> tuple[bytes, dict[str, Any]]:
    response = httpx.get(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.content, json.loads(response.content)


def blob(host: str, repository: str, digest: str) -> bytes:
    response = httpx.get(f"http://{host}/v2/{repository}/blobs/{digest}", timeout=30)
    response.raise_for_status()
    return response.content


def push_blob(host: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = httpx.post(f"http://{host}/v2/{repository}/blobs/uploads/", timeout=30)
    started.raise_for_status()
    location = httpx.URL(f"http://{host}").join(started.headers["location"])
    done = httpx.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    done.raise_for_status()
    return digest


def put_manifest(host: str, repository: str, tag: str, data: bytes) -> None:
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        content=data,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def facts(image: Reference, source: str = "staging.example/dev/app") -> PromotionFacts:
    started = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    return PromotionFacts(
        source=Reference.parse(source).with_digest(image.digest),
        destination=image,
        builder="urn:imgctl:test-builder",
        started=started,
        finished=started + timedelta(seconds=3),
        requested_by="alice@example.com",
        request_id="req-1",
    )


def sslib_verifies(envelope: bytes, public_pem: bytes) -> bool:
    """securesystemslib's own DSSE verification, with a key made from the PEM (not imgctl's)."""
    from securesystemslib.exceptions import VerificationError

    doc = json.loads(envelope)
    # The signature's keyid (cosign's and imgctl's are empty; from_crypto would make one up).
    key = SSlibKey(
        doc["signatures"][0]["keyid"],
        "ecdsa",
        "ecdsa-sha2-nistp256",
        {"public": public_pem.decode()},
    )
    try:
        Envelope.from_dict(doc).verify([key], 1)
    except VerificationError:
        return False
    return True


def build_time_layer(host: str, repository: str, digest: str, key_path: Path) -> dict[str, Any]:
    """A build-time SLSA v0.2 attestation as cosign attaches it (Statement v0.1), pushed."""
    from cryptography.hazmat.primitives import hashes

    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_V02,
        "subject": [{"name": f"{host}/{repository}", "digest": {"sha256": digest[7:]}}],
        "predicate": {"builder": {"id": "https://ci.example/builder"}, "buildType": "make"},
    }
    payload = json.dumps(statement).encode()
    payload_type = b"application/vnd.in-toto+json"
    # PAE per the DSSE specification, written out here so this helper shares nothing with imgctl.
    pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(payload), payload)
    private = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    signature = private.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = json.dumps(
        {
            "payloadType": payload_type.decode(),
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
        }
    ).encode()
    layer_digest = push_blob(host, repository, envelope)
    return {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": len(envelope),
        "digest": layer_digest,
        "annotations": {"predicateType": SLSA_V02, "dev.cosignproject.cosign/signature": ""},
    }


def put_att_manifest(host: str, repository: str, digest: str, layers: list[dict[str, Any]]) -> None:
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]}})
    config_digest = push_blob(host, repository, config.encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": layers,
    }
    put_manifest(host, repository, att_tag(digest), json.dumps(manifest).encode())


# ---------------------------------------------------------------------------------- library


async def test_attest_appends_a_dsse_layer_that_securesystemslib_verifies_and_a_rerun_adds_nothing(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], tuple[Path, Path]],
    client: RegistryClient,
) -> None:
    pushed = push_image(registry, layers=1, layer_size=300)
    image = Reference.parse(pushed.ref).with_digest(Digest.parse(pushed.digest))
    host, repository = image.registry, image.repository
    key_path, pub_path = keys("a")
    signer = load_signer(str(key_path))
    statement = promotion_statement(facts(image))

    first = await attest_image(client, image, signer, statement)
    assert first.status == "attested"
    assert first.attestation == image.with_tag(att_tag(pushed.digest))
    _, manifest = manifest_at(host, repository, att_tag(pushed.digest))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == DSSE_MEDIA_TYPE
    assert layer["annotations"] == {
        "predicateType": PROMOTION_PREDICATE_TYPE,
        "dev.cosignproject.cosign/signature": "",
    }
    envelope = blob(host, repository, layer["digest"])
    doc = json.loads(envelope)
    assert doc["payloadType"] == "application/vnd.in-toto+json"
    assert json.loads(base64.b64decode(doc["payload"])) == statement
    assert doc["signatures"][0]["keyid"] == ""
    assert sslib_verifies(envelope, pub_path.read_bytes())
    assert not sslib_verifies(envelope, keys("b")[1].read_bytes())

    again = await attest_image(client, image, signer, promotion_statement(facts(image)))
    assert again.status == "already-attested"
    _, after = manifest_at(host, repository, att_tag(pushed.digest))
    assert after == manifest

    policy = TrustPolicy(keys=(load_public_key(str(pub_path)),))
    [check] = await list_attestations(client, image, policy)
    assert (check.ok, check.reason, check.predicate_type) == (
        True,
        f"verified with key {pub_path}",
        PROMOTION_PREDICATE_TYPE,
    )
    assert check.statement == statement
    [unjudged] = await list_attestations(client, image)
    assert (unjudged.ok, unjudged.reason) == (False, "not verified: no key given")
    other = TrustPolicy(keys=(load_public_key(str(keys("b")[1])),))
    [refused] = await list_attestations(client, image, other)
    assert not refused.ok
    assert refused.reason.startswith("the envelope's signature does not verify with")


async def test_a_build_time_attestation_is_kept_and_another_destination_is_attested_too(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], tuple[Path, Path]],
    client: RegistryClient,
) -> None:
    pushed = push_image(registry, layers=1, layer_size=310)
    image = Reference.parse(pushed.ref).with_digest(Digest.parse(pushed.digest))
    host, repository = image.registry, image.repository
    built = build_time_layer(host, repository, pushed.digest, keys("ci")[0])
    put_att_manifest(host, repository, pushed.digest, [built])

    signer = load_signer(str(keys("a")[0]))
    outcome = await attest_image(client, image, signer, promotion_statement(facts(image)))
    assert outcome.status == "attested"
    _, manifest = manifest_at(host, repository, att_tag(pushed.digest))
    assert manifest["layers"][0] == built
    assert len(manifest["layers"]) == 2

    # The same digest under another destination name is another promotion.
    elsewhere = facts(image)
    moved = PromotionFacts(
        source=elsewhere.source,
        destination=Reference.parse("mirror.example/prod/app").with_digest(image.digest),
        builder=elsewhere.builder,
        started=elsewhere.started,
        finished=elsewhere.finished,
    )
    second = await attest_image(client, image, signer, promotion_statement(moved))
    assert second.status == "attested"
    # A statement about the build-time predicate type is not the promoter's.
    third = await attest_image(client, image, signer, promotion_statement(facts(image)))
    assert third.status == "already-attested"
    _, final = manifest_at(host, repository, att_tag(pushed.digest))
    assert len(final["layers"]) == 3

    policy = TrustPolicy(
        keys=(load_public_key(str(keys("a")[1])), load_public_key(str(keys("ci")[1])))
    )
    checks = await list_attestations(client, image, policy)
    assert [(c.predicate_type, c.ok) for c in checks] == [
        (SLSA_V02, True),
        (PROMOTION_PREDICATE_TYPE, True),
        (PROMOTION_PREDICATE_TYPE, True),
    ]
    assert checks[0].reason == f"verified with key {keys('ci')[1]}"


async def test_a_promotion_layer_by_another_key_or_garbled_does_not_count_as_attested(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], tuple[Path, Path]],
    client: RegistryClient,
) -> None:
    pushed = push_image(registry, layers=1, layer_size=330)
    image = Reference.parse(pushed.ref).with_digest(Digest.parse(pushed.digest))
    host, repository = image.registry, image.repository
    statement = promotion_statement(facts(image))
    # Key b's promotion attestation of this very digest and destination...
    by_b = await attest_image(client, image, load_signer(str(keys("b")[0])), statement)
    assert by_b.status == "attested"
    # ...and a garbled layer carrying the promoter's predicate type.
    garbage = b'{"payloadType": "application/vnd.in-toto+json", "payload": "bm90IGpzb24="}'
    _, manifest = manifest_at(host, repository, att_tag(pushed.digest))
    stray = {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": len(garbage),
        "digest": push_blob(host, repository, garbage),
        "annotations": {"predicateType": PROMOTION_PREDICATE_TYPE},
    }
    put_att_manifest(host, repository, pushed.digest, [*manifest["layers"], stray])

    by_a = await attest_image(client, image, load_signer(str(keys("a")[0])), statement)
    assert by_a.status == "attested"
    _, after = manifest_at(host, repository, att_tag(pushed.digest))
    assert len(after["layers"]) == 3
    assert after["layers"][:2] == [manifest["layers"][0], stray]
    policy = TrustPolicy(keys=(load_public_key(str(keys("a")[1])),))
    checks = await list_attestations(client, image, policy)
    assert [c.ok for c in checks] == [False, False, True]
    assert checks[1].reason == "malformed envelope has no signatures"


# ------------------------------------------------------------------- embedded registry


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRegistry]:
    server = start_embedded(
        tmp_path_factory.mktemp("embedded-attest") / "root", request.addfinalizer
    )
    yield server
    assert "Traceback" not in server.output()


async def test_attest_and_list_on_the_embedded_registry(
    embedded: EmbeddedRegistry,
    layouts: Callable[..., Any],
    repo: Callable[[str], str],
    keys: Callable[[str], tuple[Path, Path]],
    client: RegistryClient,
) -> None:
    built = layouts(tag="v1", layers=1, layer_size=420)
    repository = repo("attested")
    push_layout(built.oci_ref, f"{embedded.host}/{repository}:v1")
    image = Reference.parse(f"{embedded.host}/{repository}").with_digest(Digest.parse(built.digest))
    signer = load_signer(str(keys("a")[0]))
    assert (
        await attest_image(client, image, signer, promotion_statement(facts(image)))
    ).status == ("attested")
    assert (
        await attest_image(client, image, signer, promotion_statement(facts(image)))
    ).status == ("already-attested")
    policy = TrustPolicy(keys=(load_public_key(str(keys("a")[1])),))
    [check] = await list_attestations(client, image, policy)
    assert check.ok


# ---------------------------------------------------------------------------------- CLI


def test_cli_attest_lists_grouped_by_predicate_type_filters_and_exits_7_when_none_verifies(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    pushed = push_image(registry, layers=1, layer_size=320)
    host, repository = Reference.parse(pushed.ref).registry, Reference.parse(pushed.ref).repository
    put_att_manifest(
        host,
        repository,
        pushed.digest,
        [build_time_layer(host, repository, pushed.digest, keys("ci")[0])],
    )
    predicate = tmp_path / "vuln.json"
    predicate.write_text(json.dumps({"scanner": {"uri": "pkg:github/aquasecurity/trivy"}}))
    attested = imgctl(
        "attest",
        pushed.ref,
        "--key",
        str(keys("a")[0]),
        "--predicate",
        str(predicate),
        "--type",
        "vuln",
        "-o",
        "json",
    )
    assert attested.returncode == 0, attested.stderr
    outcome = json.loads(attested.stdout)
    vuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
    assert (outcome["status"], outcome["predicateType"], outcome["digest"]) == (
        "attested",
        vuln,
        pushed.digest,
    )
    again = imgctl(
        "attest",
        pushed.ref,
        "--key",
        str(keys("a")[0]),
        "--predicate",
        str(predicate),
        "--type",
        vuln,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already attested {host}/{repository}@{pushed.digest}")

    listed = imgctl(
        "attestations",
        pushed.ref,
        "--key",
        str(keys("a")[1]),
        "--key",
        str(keys("ci")[1]),
        "-o",
        "json",
    )
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["digest"] == pushed.digest
    assert report["predicateTypes"] == [
        {"predicateType": SLSA_V02, "count": 1, "verified": 1},
        {"predicateType": vuln, "count": 1, "verified": 1},
    ]
    [build, scan] = report["attestations"]
    assert scan["statement"]["predicate"] == {"scanner": {"uri": "pkg:github/aquasecurity/trivy"}}
    assert scan["statement"]["subject"] == [
        {"name": f"{host}/{repository}", "digest": {"sha256": pushed.digest[7:]}}
    ]
    assert build["reason"] == f"verified with key {keys('ci')[1]}"

    only = imgctl(
        "attestations",
        pushed.ref,
        "--predicate-type",
        "vuln",
        "--key",
        str(keys("ci")[1]),
        "-o",
        "json",
    )
    # The vulnerability report is a's, not ci's: nothing of that type verifies.
    assert only.returncode == 7, only.stderr
    [refused] = json.loads(only.stdout)["attestations"]
    assert refused["predicateType"] == vuln
    assert not refused["verified"]

    unkeyed = imgctl("attestations", pushed.ref)
    assert unkeyed.returncode == 0, unkeyed.stderr
    assert unkeyed.stdout.splitlines() == [
        f"{SLSA_V02}  (1)",
        f"  unchecked  {build['layer']}  not verified: no key given",
        f"{vuln}  (1)",
        f"  unchecked  {scan['layer']}  not verified: no key given",
    ]
    none = imgctl(
        "attestations", pushed.ref, "--predicate-type", "spdxjson", "--key", str(keys("a")[1])
    )
    assert none.returncode == 7
    assert "no attestation of" in none.stderr


# ------------------------------------------------------- a real cosign attestation, listed

COSIGN = Path(__file__).resolve().parents[1] / "data" / "cosign" / "sigstore-cosign"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# go-containerregistry's empty.Image, byte for byte: the image the cosign fixture attests.
EMPTY_CONFIG = (
    b'{"architecture":"","created":"0001-01-01T00:00:00Z","os":"",'
    b'"rootfs":{"type":"layers","diff_ids":null},"config":{}}'
)


def push_cosign_attested_image(host: str, repository: str, *, fallback_tag: bool) -> str:
    """The empty image and cosign's bundle as cosign's WriteAttestationNewBundleFormat stores it."""
    config_digest = push_blob(host, repository, EMPTY_CONFIG)
    manifest = (
        b'{"schemaVersion":2,"mediaType":"' + DOCKER_MANIFEST.encode() + b'","config":'
        b'{"mediaType":"application/vnd.docker.container.image.v1+json","size":'
        + str(len(EMPTY_CONFIG)).encode()
        + b',"digest":"'
        + config_digest.encode()
        + b'"},"layers":[]}'
    )
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert digest == "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/v1",
        content=manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    bundle = (COSIGN / "oci-attestation.sigstore.json").read_bytes()
    bundle_digest = push_blob(host, repository, bundle)
    empty_digest = push_blob(host, repository, b"{}")
    annotations = {
        "org.opencontainers.image.created": "2025-02-28T19:18:11Z",
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://cosign.sigstore.dev/attestation/v1",
    }
    referrer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "size": 2,
                "digest": empty_digest,
            },
            "layers": [{"mediaType": BUNDLE_TYPE, "size": len(bundle), "digest": bundle_digest}],
            "subject": {"mediaType": DOCKER_MANIFEST, "size": len(manifest), "digest": digest},
            "annotations": annotations,
        }
    ).encode()
    referrer_digest = "sha256:" + hashlib.sha256(referrer).hexdigest()
    put_manifest(host, repository, referrer_digest, referrer)
    if fallback_tag:
        # A registry without the referrers API: the OCI tag schema's index, as cosign writes it.
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "size": len(referrer),
                    "digest": referrer_digest,
                    "artifactType": BUNDLE_TYPE,
                    "annotations": annotations,
                }
            ],
        }
        response = httpx.put(
            f"http://{host}/v2/{repository}/manifests/{digest.replace(':', '-')}",
            content=json.dumps(index).encode(),
            headers={"Content-Type": OCI_INDEX},
            timeout=30,
        )
        assert response.status_code == 201, response.text
    return digest


@pytest.mark.parametrize("where", ["docker-registry", "embedded"])
def test_a_cosign_made_attestation_is_listed_and_verified_keyless(
    where: str,
    registry: Registry,
    embedded: EmbeddedRegistry,
    repo: Callable[[str], str],
) -> None:
    host = registry.host if where == "docker-registry" else embedded.host
    repository = repo("cosign-attested")
    digest = push_cosign_attested_image(host, repository, fallback_tag=where == "docker-registry")
    keyless = [
        "--certificate-identity",
        "cody@soyland.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
        "--trusted-root",
        str(COSIGN / "trusted_root_pgi.json"),
    ]
    listed = imgctl("attestations", f"{host}/{repository}:v1", *keyless, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["digest"] == digest
    [attestation] = report["attestations"]
    assert attestation["verified"], attestation["reason"]
    assert attestation["reason"] == (
        "verified keyless: cody@soyland.com (https://github.com/login/oauth)"
    )
    assert attestation["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"
    assert attestation["statement"]["subject"][0]["digest"] == {"sha256": digest[7:]}

    other = [*keyless]
    other[1] = "mallory@example.com"
    refused = imgctl("attestations", f"{host}/{repository}:v1", *other, "-o", "json")
    assert refused.returncode == 7
    assert json.loads(refused.stdout)["attestations"][0]["reason"].startswith(
        "certificate identity refused"
    )
