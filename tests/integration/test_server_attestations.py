"""A signing `imgctl server` attests each promotion; the catalog says so; admission can require it.

A real `imgctl server` process (tests/support/deployment.py) with the built-in issuer and an
ssh-agent, docker-registry as dev and prod (prod behind the fault proxy where a push must fail),
the audit and catalog tables on SQLite and PostgreSQL (``db_url``). What lands in prod is read by
a test-side reader below: skopeo for the ``.att`` manifest, plain HTTP for the envelope, the DSSE
signature checked with pyca/cryptography over the PAE the DSSE specification defines, sharing no
code with imgctl.trust (issue 19 item 6).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..conftest import IMGCTL, PushedImage
from ..support.cosign import signature_layers, tags_of
from ..support.deployment import (
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    promote_request,
    server_env,
    start_identity,
    start_server,
    stop_process,
)
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, skopeo
from .test_cip_signing import Key, make_key
from .test_server_signing import audit_rows, key_id

DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
PROMOTION = "https://k8s.io/promo-tools/promotion/v1"


# ----------------------------------------------------------------------------- a test-side reader


@dataclass
class Attestation:
    """One ``.att`` layer: its annotations, the DSSE envelope and the statement it carries."""

    annotations: dict[str, str]
    media_type: str
    envelope: dict[str, Any]

    @property
    def statement(self) -> dict[str, Any]:
        statement: dict[str, Any] = json.loads(base64.b64decode(self.envelope["payload"]))
        return statement

    def signed_by(self, key: ec.EllipticCurvePublicKey) -> bool:
        """Whether one of the envelope's signatures verifies with ``key`` over the PAE."""
        payload_type = self.envelope["payloadType"].encode()
        body = base64.b64decode(self.envelope["payload"])
        pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(body), body)
        for signature in self.envelope.get("signatures", []):
            try:
                key.verify(base64.b64decode(signature["sig"]), pae, ec.ECDSA(hashes.SHA256()))
            except (InvalidSignature, ValueError):
                continue
            return True
        return False


def attestation_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def attestation_manifest(host: str, repository: str, digest: str) -> bytes | None:
    """The raw ``.att`` manifest of ``digest`` as skopeo reads it; None if there is none."""
    if attestation_tag(digest) not in tags_of(host, repository):
        return None
    ref = f"docker://{host}/{repository}:{attestation_tag(digest)}"
    raw: bytes = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout
    return raw


def attestations(host: str, repository: str, digest: str) -> list[Attestation]:
    """Every layer of ``digest``'s ``.att`` manifest (empty when it has none)."""
    raw = attestation_manifest(host, repository, digest)
    if raw is None:
        return []
    found = []
    for layer in json.loads(raw)["layers"]:
        url = f"http://{host}/v2/{repository}/blobs/{layer['digest']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            envelope = json.loads(response.read())
        found.append(Attestation(layer.get("annotations") or {}, layer["mediaType"], envelope))
    return found


def strings_in(value: object) -> set[str]:
    """Every string value anywhere in a JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_in(v) for v in value)) if value else set()
    return set()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    root = tmp_path_factory.mktemp("attest-identity")
    with contextlib.ExitStack() as cleanup:
        yield start_identity(root, {"alice": ("alice@example.com", [ENGINEERING, OPS])}, cleanup)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("attest-keys")
    return {name: make_key(directory, name) for name in ("release", "other")}


def promote_cli(
    identity: Identity, address: str, ref: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "promote", ref, "-d", "prod", "--server", address, "-u", "alice", *extra],
        capture_output=True,
        text=True,
        env=identity.env(),
        timeout=120,
    )


def catalog_entries(http: str, environment: str = "prod") -> list[dict[str, Any]]:
    answer = httpx.get(f"http://{http}/images", params={"environment": environment}, timeout=30)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()
    return entries


def catalog_ls(http: str) -> str:
    """``imgctl catalog ls -e prod`` against the server's HTTP side: its one line per entry."""
    listed = subprocess.run(
        [IMGCTL, "catalog", "ls", "--catalog-url", f"http://{http}", "-e", "prod"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def repository_of(image: PushedImage) -> str:
    return image.ref.split("/", 1)[1].rsplit(":", 1)[0]


# ----------------------------------------------------------------------------- promotions


def test_a_signing_server_attests_each_promotion_once(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    db_url: str,
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = repository_of(image)
    release = keys["release"]
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_DATABASE_URL": db_url,
        "IMGCTL_SIGN_KEY": str(release.private),
    }
    process, address, http, log = start_server(tmp_path, env)
    try:
        token = identity.token("alice")
        status, details, request_id, answer = asyncio.run(
            grpc_call(address, "Promote", promote_request(f"{repository}:v1"), token=token)
        )
        assert status == grpc.StatusCode.OK, details
        assert answer.HasField("attested")
        assert answer.attested
        assert answer.attestation_error == ""
        assert answer.signed
        [attestation] = attestations(prod.host, f"release/{repository}", image.digest)
        assert attestation.media_type == DSSE
        assert attestation.annotations.get("predicateType") == PROMOTION
        assert attestation.envelope["payloadType"] == IN_TOTO
        assert attestation.signed_by(release.key)
        assert not attestation.signed_by(keys["other"].key)
        statement = attestation.statement
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        [subject] = statement["subject"]
        assert "sha256:" + subject["digest"]["sha256"] == image.digest
        # The caller, the call and the server (the builder, by its key id) are named.
        named = strings_in(statement["predicate"])
        assert "alice@example.com" in named
        assert request_id in named
        assert f"urn:imgctl:server:{key_id(release)}" in named
        att_manifest = attestation_manifest(prod.host, f"release/{repository}", image.digest)

        # Again: unchanged, attested (found for this destination), nothing written.
        again = promote_cli(identity, address, f"{repository}:v1")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"unchanged {repository}:v1")
        assert f"  attested with key {key_id(release)[:12]} (promotion attestation)\n" in (
            again.stdout
        )
        assert attestation_manifest(prod.host, f"release/{repository}", image.digest) == (
            att_manifest
        )
        [entry] = catalog_entries(http)
        listed = catalog_ls(http)
    finally:
        stop_process(process)
    assert listed.endswith("  signed, attested\n"), listed
    assert entry["id"] == image.digest
    assert entry["name"] == f"{prod.host}/release/{repository}"
    assert (entry["signed"], entry["attested"]) == (True, True)
    rows = [r for r in audit_rows(db_url) if r.action == "promote"]
    assert len(rows) == 2
    assert all((r.signed, r.attested, r.attestation_error) == (True, True, None) for r in rows)
    assert "Traceback" not in log.read_text()


def test_imgctls_own_listing_verifies_the_promotion_attestation(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, RegistryClient
    from imgctl.trust import TrustPolicy, list_attestations, load_public_key

    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = repository_of(image)
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path}/audit.db",
        "IMGCTL_SIGN_KEY": str(keys["release"].private),
    }
    process, address, _, _ = start_server(tmp_path, env)
    try:
        result = promote_cli(identity, address, f"{repository}:v1", "-o", "json")
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["attested"] is True

    async def listed(key: Key) -> list[Any]:
        policy = TrustPolicy(keys=(load_public_key(str(key.public)),), any_identity=True)
        ref = Reference.parse(f"{prod.host}/release/{repository}@{image.digest}")
        async with RegistryClient(options=ClientOptions(proxies={})) as client:
            return await list_attestations(client, ref, policy)

    [check] = asyncio.run(listed(keys["release"]))
    assert (check.ok, check.predicate_type) == (True, PROMOTION)
    assert check.statement is not None
    assert answer["requestId"] in strings_in(dict(check.statement))
    [other] = asyncio.run(listed(keys["other"]))
    assert other.ok is False


def test_an_attestation_failure_keeps_the_copy_and_says_unattested(
    identity: Identity,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    db_url: str,
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    proxy = proxy_for(prod)
    refusal = proxy.fail(500, 10_000, method="PUT", path=r"/manifests/sha256-[0-9a-f]{64}\.att$")
    image = push_image(dev, platforms=None)
    repository = repository_of(image)
    release = keys["release"]
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_REGISTRY_PROD": f"{proxy.host}/release",
        "IMGCTL_DATABASE_URL": db_url,
    }
    process, address, http, _ = start_server(tmp_path, env, "--sign-key", str(release.private))
    try:
        result = promote_cli(identity, address, f"{repository}:v1")
        refused_entry = catalog_entries(http)
        refused_listing = catalog_ls(http)
        assert refusal.hits > 0
        refused_att = attestation_manifest(prod.host, f"release/{repository}", image.digest)
        refused_sigs = signature_layers(prod.host, f"release/{repository}", image.digest)
        # The registry takes .att manifests again: promoting again attests, nothing else.
        proxy.faults.clear()
        healed = promote_cli(identity, address, f"{repository}:v1")
        healed_entry = catalog_entries(http)
    finally:
        stop_process(process)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"promoted {repository}:v1: dev -> prod")
    assert f"  signed with key {key_id(release)[:12]}\n" in result.stdout
    assert "attested with key" not in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "imgctl: error: promoted, but the server could not attest it (not attested: "
    ), line
    assert line.endswith("; promote again to attest it")
    # The copy stands, signed; no attestation, not even half of one.
    assert digest_of(f"{prod.host}/release/{repository}:v1") == image.digest
    assert len(refused_sigs) == 1
    assert refused_att is None
    [entry] = refused_entry
    assert (entry["signed"], entry["attested"]) == (True, False)
    assert refused_listing.endswith("  signed, not attested\n"), refused_listing

    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert healed.stdout.startswith(f"unchanged {repository}:v1")
    [attestation] = attestations(prod.host, f"release/{repository}", image.digest)
    assert attestation.signed_by(release.key)
    assert len(signature_layers(prod.host, f"release/{repository}", image.digest)) == 1
    [entry] = healed_entry
    assert (entry["signed"], entry["attested"]) == (True, True)

    first, second = sorted(
        (r for r in audit_rows(db_url) if r.action == "promote"), key=lambda r: r.time
    )
    assert (first.result, first.signed, first.attested) == ("succeeded", True, False)
    assert first.signature_key == key_id(release)
    assert (first.attestation_error or "").startswith("not attested: ")
    assert first.error is None
    assert (second.result, second.attested, second.attestation_error) == ("succeeded", True, None)


def test_a_server_without_a_key_attests_nothing(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = repository_of(image)
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": url}
    process, address, http, _ = start_server(tmp_path, env)
    try:
        result = promote_cli(identity, address, f"{repository}:v1", "-o", "json")
        [entry] = catalog_entries(http)
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stderr
    assert '"attested"' not in result.stdout  # unset: this server does not sign
    assert tags_of(prod.host, f"release/{repository}") == ["v1"]
    assert "signed" not in entry
    assert "attested" not in entry
    [row] = [r for r in audit_rows(url) if r.action == "promote"]
    assert (row.attested, row.attestation_error) == (None, None)


# ----------------------------------------------------------------------------- admission


def admission_review(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "apps",
            "object": {"spec": {"containers": [{"name": "c", "image": image}]}},
        },
    }


def test_the_server_admits_what_it_attested_and_denies_the_rest(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    db_url: str,
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    promoted = push_image(dev, platforms=None)
    # Copied to prod by hand (no promotion, so no attestation), then recorded in the catalog.
    by_hand = push_image(prod, platforms=None, repository="release/by-hand")
    release = keys["release"]
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": db_url}
    process, address, http, log = start_server(
        tmp_path,
        env,
        *("--sign-key", str(release.private)),
        *("--require-attestation", f"prod={release.public}"),
        "--allow-anonymous-catalog-writes",
    )
    try:
        result = promote_cli(identity, address, f"{repository_of(promoted)}:v1")
        assert result.returncode == 0, result.stdout + result.stderr
        recorded = httpx.put(
            f"http://{http}/images",
            json={
                "id": by_hand.digest,
                "name": f"{prod.host}/release/by-hand",
                "tags": ["v1"],
                "environment": "prod",
            },
            timeout=30,
        )
        assert recorded.status_code == 200, recorded.text
        answers = {}
        for name, image in (
            ("promoted", f"{prod.host}/release/{repository_of(promoted)}:v1"),
            ("by-hand", f"{prod.host}/release/by-hand:v1"),
        ):
            answer = httpx.post(
                f"http://{http}/admission/prod", json=admission_review(image), timeout=30
            )
            assert answer.status_code == 200, answer.text
            answers[name] = answer.json()["response"]
    finally:
        stop_process(process)
    assert answers["promoted"]["allowed"] is True, answers["promoted"]
    denied = answers["by-hand"]
    assert denied["allowed"] is False
    assert denied["status"]["message"] == (
        f"imgctl denied 1 image(s) in prod: spec.containers[0].image "
        f"'{prod.host}/release/by-hand:v1': no valid promotion attestation by key "
        f"{release.public} on {by_hand.digest}: no attestations"
    )
    assert "Traceback" not in log.read_text()
