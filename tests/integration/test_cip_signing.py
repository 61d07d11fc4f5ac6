"""`imgctl cip` signs what it promotes and can require signed sources (issue 18 items 5, 6).

Real docker-registry processes (source, primary, mirror), skopeo and a test-side cosign reader
(tests/support/cosign.py, sharing no code with imgctl.trust) as referees; the fault proxy in
front of a primary registry refuses signature pushes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..conftest import IMGCTL
from ..support.cosign import signature_layers, signature_manifest, tags_of
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, push_layout

IMAGES = ("app-a", "app-b", "app-c")


@dataclass
class Key:
    private: Path
    public: Path
    key: ec.EllipticCurvePublicKey


def make_key(directory: Path, name: str) -> Key:
    directory.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    private_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Key(private_path, public_path, private.public_key())


@dataclass
class Source:
    registry: Registry
    digests: dict[str, str]  # image -> digest of its v1

    @property
    def name(self) -> str:
        return f"{self.registry.host}/staging"


@pytest.fixture(scope="module")
def source(registries: Callable[..., Registry], layouts: Callable[..., Any]) -> Source:
    registry = registries()
    digests = {}
    for number, image in enumerate(IMAGES):
        built = layouts(tag="v1", platforms=None, layers=1, layer_size=1_000 + number)
        push_layout(built.oci_ref, f"{registry.host}/staging/{image}:v1")
        digests[image] = built.digest
    return Source(registry, digests)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: make_key(directory, name) for name in ("release", "other")}


def cip(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    env.update(environ or {})
    return subprocess.run(
        [IMGCTL, "cip", "--rate-limit", "2000", "--burst", "100", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def write_manifest(
    path: Path, source: str, destinations: list[str], images: dict[str, Any]
) -> Path:
    registries = [{"name": source, "src": True}] + [{"name": d} for d in destinations]
    document = {
        "registries": registries,
        "images": [{"name": name, "dmap": dmap} for name, dmap in sorted(images.items())],
    }
    path.write_text(json.dumps(document))
    return path


def document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_confirm_signs_each_promoted_digest_once_in_the_primary_only(
    source: Source, registries: Callable[..., Registry], keys: dict[str, Key], tmp_path: Path
) -> None:
    primary, mirror = registries(), registries()
    # app-a under two tags: one digest, one signature.
    images = {
        "app-a": {source.digests["app-a"]: ["v1", "stable"]},
        "app-b": {source.digests["app-b"]: ["v1"]},
    }
    manifest = write_manifest(
        tmp_path / "m.yaml", source.name, [f"{primary.host}/prod", mirror.host], images
    )
    release = keys["release"]
    done = cip("--manifest", str(manifest), "--confirm", "--sign-key", str(release.private))
    assert done.returncode == 0, done.stderr
    assert "promoted 6 of 6 edges" in done.stdout
    assert "signed 2 of 2 promoted digest(s) in their primary registry" in done.stdout
    for image in ("app-a", "app-b"):
        digest = source.digests[image]
        assert digest_of(f"{mirror.host}/{image}:v1") == digest  # the mirror got the image...
        assert signature_manifest(mirror.host, image, digest) is None  # ...and no signature
        [layer] = signature_layers(primary.host, f"prod/{image}", digest)
        assert layer.signed_by(release.key)
        assert not layer.signed_by(keys["other"].key)
        assert layer.manifest_digest == digest
        assert layer.docker_reference == f"{primary.host}/prod/{image}"
    sig_manifest = signature_manifest(primary.host, "prod/app-a", source.digests["app-a"])

    again = cip(
        "--manifest", str(manifest), "--confirm", "--sign-key", str(release.private), "-o", "json"
    )
    assert again.returncode == 0, again.stderr
    result = document(again)
    assert result["summary"]["present"] == 6
    assert result["signing"]["results"] == []  # nothing promoted, nothing signed
    assert signature_manifest(primary.host, "prod/app-a", source.digests["app-a"]) == sig_manifest

    # A new tag for a signed digest is promoted (add_tag); the signature is found, not added.
    images["app-a"][source.digests["app-a"]].append("v1.0")
    write_manifest(manifest, source.name, [f"{primary.host}/prod", mirror.host], images)
    tagged = cip(
        "--manifest", str(manifest), "--confirm", "--sign-key", str(release.private), "-o", "json"
    )
    assert tagged.returncode == 0, tagged.stderr
    [signed] = document(tagged)["signing"]["results"]
    assert signed["status"] == "already-signed"
    assert signed["image"] == f"{primary.host}/prod/app-a@{source.digests['app-a']}"
    assert len(signature_layers(primary.host, "prod/app-a", source.digests["app-a"])) == 1


def test_sign_false_promotes_without_signing(
    source: Source, registries: Callable[..., Registry], keys: dict[str, Key], tmp_path: Path
) -> None:
    primary = registries()
    digest = source.digests["app-c"]
    manifest = write_manifest(
        tmp_path / "m.yaml", source.name, [primary.host], {"app-c": {digest: ["v1"]}}
    )
    done = cip(
        "--manifest",
        str(manifest),
        "--confirm",
        "--sign-key",
        str(keys["release"].private),
        "--sign=false",
    )
    assert done.returncode == 0, done.stderr
    assert digest_of(f"{primary.host}/app-c:v1") == digest
    assert "signed" not in done.stdout
    assert tags_of(primary.host, "app-c") == ["v1"]


@pytest.mark.parametrize(
    ("key", "password", "problem"),
    [
        pytest.param("missing", None, "no such key file", id="missing-file"),
        pytest.param("public", None, "", id="public-key"),
        pytest.param("cosign", "wrong password", "password", id="wrong-cosign-password"),
    ],
)
def test_a_bad_key_copies_and_signs_nothing(
    source: Source,
    registries: Callable[..., Registry],
    keys: dict[str, Key],
    tmp_path: Path,
    key: str,
    password: str | None,
    problem: str,
) -> None:
    from imgctl.trust import generate_key_pair

    primary = registries()
    manifest = write_manifest(
        tmp_path / "m.yaml",
        source.name,
        [primary.host],
        {"app-a": {source.digests["app-a"]: ["v1"]}},
    )
    paths = {"missing": str(tmp_path / "nowhere.key"), "public": str(keys["release"].public)}
    environ = {}
    if key == "cosign":
        private, _ = generate_key_pair(tmp_path / "cosign", b"the right one")
        paths["cosign"] = str(private)
        environ["COSIGN_PASSWORD"] = password or ""
    result = cip(
        "--manifest", str(manifest), "--confirm", "--sign-key", paths[key], environ=environ
    )
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("imgctl: error: --sign-key: ")
    assert problem in line
    assert "Traceback" not in result.stderr
    assert tags_of(primary.host, "app-a") == []  # nothing copied


def test_a_signing_failure_is_reported_per_image_and_leaves_no_half_signature(
    source: Source,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    primary = registries()
    proxy = proxy_for(primary)
    # The primary refuses every signature manifest of app-b (its images and blobs go through).
    proxy.fail(500, 1_000, method="PUT", path=r"/v2/app-b/manifests/sha256-[0-9a-f]{64}\.sig$")
    images = {image: {source.digests[image]: ["v1"]} for image in ("app-a", "app-b")}
    manifest = write_manifest(tmp_path / "m.yaml", source.name, [proxy.host], images)
    args = ["--manifest", str(manifest), "--confirm", "--retries", "0"]
    result = cip(*args, "--sign-key", str(keys["release"].private))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "promoted 2 of 2 edges" in result.stdout  # the copy still counts
    assert "signed 1 of 2 promoted digest(s)" in result.stdout
    failed = f"unsigned  {proxy.host}/app-b@{source.digests['app-b']}: "
    assert any(line.startswith(failed) for line in result.stderr.splitlines()), result.stderr
    assert digest_of(f"{primary.host}/app-b:v1") == source.digests["app-b"]
    # No half signature: app-b has no .sig tag at all, app-a's is whole and verifies.
    assert signature_manifest(primary.host, "app-b", source.digests["app-b"]) is None
    assert tags_of(primary.host, "app-b") == ["v1"]
    [layer] = signature_layers(primary.host, "app-a", source.digests["app-a"])
    assert layer.signed_by(keys["release"].key)

    as_json = cip(*args, "--sign-key", str(keys["release"].private), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr  # everything present: nothing to sign


def test_a_signing_failure_in_json(
    source: Source,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    primary = registries()
    proxy = proxy_for(primary)
    proxy.fail(500, 1_000, method="PUT", path=r"/manifests/sha256-[0-9a-f]{64}\.sig$")
    digest = source.digests["app-c"]
    manifest = write_manifest(
        tmp_path / "m.yaml", source.name, [proxy.host], {"app-c": {digest: ["v1"]}}
    )
    result = cip(
        "--manifest",
        str(manifest),
        "--confirm",
        "--retries",
        "0",
        "--sign-key",
        str(keys["release"].private),
        "-o",
        "json",
    )
    assert result.returncode == 1, result.stderr
    report = document(result)
    assert [r["ok"] for r in report["results"]] == [True]
    [signing] = report["signing"]["results"]
    assert signing["status"] == "failed"
    assert signing["image"] == f"{proxy.host}/app-c@{digest}"
    assert "500" in signing["error"] or "UNAVAILABLE" in signing["error"]
    assert len(report["signing"]["keyId"]) == 64
    assert signature_manifest(primary.host, "app-c", digest) is None


# ----------------------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def signed_sources(
    registries: Callable[..., Registry], layouts: Callable[..., Any], keys: dict[str, Key]
) -> Source:
    """good: signed by release; forged: signed by other; bare: not signed at all."""
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, RegistryClient
    from imgctl.trust import load_signer, sign_image

    registry = registries()
    digests = {}
    for number, image in enumerate(("good", "forged", "bare")):
        built = layouts(tag="v1", platforms=None, layers=1, layer_size=3_000 + number)
        push_layout(built.oci_ref, f"{registry.host}/staging/{image}:v1")
        digests[image] = built.digest

    async def sign() -> None:
        async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
            for image, key in (("good", "release"), ("forged", "other")):
                ref = Reference.parse(f"{registry.host}/staging/{image}@{digests[image]}")
                await sign_image(client, ref, load_signer(str(keys[key].private)))

    asyncio.run(sign())
    return Source(registry, digests)


def test_unsigned_and_wrongly_signed_sources_are_refused_and_the_rest_promoted(
    signed_sources: Source,
    registries: Callable[..., Registry],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    destination = registries()
    images = {image: {digest: ["v1"]} for image, digest in signed_sources.digests.items()}
    manifest = write_manifest(tmp_path / "m.yaml", signed_sources.name, [destination.host], images)
    verify = ["--verify-key", str(keys["release"].public)]

    dry = cip("--manifest", str(manifest), *verify)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "signatures checked on 3 source(s): 1 verified, 2 refused" in dry.stdout
    staging = signed_sources.name
    # Besides the provenance phase's warning (no source carries an attestation).
    lines = [line for line in dry.stderr.splitlines() if not line.startswith("imgctl: warning")]
    assert len(lines) == 2, dry.stderr
    forged, bare = (f"{staging}/{i}@{signed_sources.digests[i]}" for i in ("forged", "bare"))
    assert sorted(line.split(": ", 1)[0] for line in lines) == sorted(
        [f"refused   {forged}", f"refused   {bare}"]
    )
    assert f"refused   {forged}: none of its 1 signature(s) verified (signature 1: " in dry.stderr
    assert f"{staging}/bare@{signed_sources.digests['bare']}: it has no signature" in dry.stderr
    assert tags_of(destination.host, "good") == []  # a dry run writes nothing

    done = cip("--manifest", str(manifest), "--confirm", *verify, "-o", "json")
    assert done.returncode == 1, done.stderr
    report = document(done)
    results = {r["destination"]: r for r in report["results"]}
    assert results[f"{destination.host}/good:v1"]["ok"] is True
    forged = results[f"{destination.host}/forged:v1"]
    assert forged["ok"] is False
    assert forged["error"].startswith(
        f"not promoted: {staging}/forged@{signed_sources.digests['forged']}: none of its 1 "
        "signature(s) verified (signature 1: "
    )
    bare = results[f"{destination.host}/bare:v1"]
    assert bare["error"] == (
        f"not promoted: {staging}/bare@{signed_sources.digests['bare']}: it has no signature"
        " (no sha256-<hex>.sig tag, no signature referrer)"
    )
    verdicts = {v["image"].rsplit("/", 1)[1].split("@")[0]: v for v in report["validation"]}
    assert verdicts["good"]["verified"] is True
    assert verdicts["good"]["reason"].startswith("signed by ")
    assert digest_of(f"{destination.host}/good:v1") == signed_sources.digests["good"]
    assert tags_of(destination.host, "forged") == []
    assert tags_of(destination.host, "bare") == []

    # Either key is enough: with both, the forged one goes too.
    both = cip(
        "--manifest", str(manifest), "--confirm", *verify, "--verify-key", str(keys["other"].public)
    )
    assert both.returncode == 1, both.stderr
    assert digest_of(f"{destination.host}/forged:v1") == signed_sources.digests["forged"]
    assert tags_of(destination.host, "bare") == []


def test_a_bad_verify_key_is_refused_before_anything(
    signed_sources: Source, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    destination = registries()
    digest = signed_sources.digests["good"]
    manifest = write_manifest(
        tmp_path / "m.yaml", signed_sources.name, [destination.host], {"good": {digest: ["v1"]}}
    )
    bogus = tmp_path / "bogus.pub"
    bogus.write_text("not a key\n")
    result = cip("--manifest", str(manifest), "--confirm", "--verify-key", str(bogus))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("imgctl: error: --verify-key: ")
    assert tags_of(destination.host, "good") == []


def test_keyless_validation_reads_the_trust_material_like_imgctl_verify(
    registries: Callable[..., Registry], layouts: Callable[..., Any], tmp_path: Path
) -> None:
    """containers/image's real keyless layer under a source's .sig tag, judged through cip.

    Certificate, chain, Rekor bundle and identity check out with the right trust material; the
    payload is for the image containers/image signed, so the edge is refused for that reason,
    which only a verifier that got the roots, the Rekor key and the identity can reach.
    """
    from .test_sign import DATA, _plant_fixture_keyless_layer

    source, destination = registries(), registries()
    built = layouts(tag="v1", platforms=None, layers=1, layer_size=7_000)
    push_layout(built.oci_ref, f"{source.host}/staging/keyless:v1")
    _plant_fixture_keyless_layer(source.host, "staging/keyless", built.digest)
    manifest = write_manifest(
        tmp_path / "m.yaml",
        f"{source.host}/staging",
        [destination.host],
        {"keyless": {built.digest: ["v1"]}},
    )
    material = [
        "--certificate-chain",
        str(DATA / "fulcio_v1.crt.pem"),
        "--rekor-public-key",
        str(DATA / "rekor.pub"),
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ]
    right = cip("--manifest", str(manifest), *material, "--certificate-identity", "mitr@redhat.com")
    assert right.returncode == 1, right.stderr
    assert right.stderr.strip().endswith(
        "(signature 1: payload is for "
        "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a)"
    ), right.stderr
    wrong = cip(
        "--manifest", str(manifest), *material, "--certificate-identity", "someone@example.com"
    )
    assert wrong.returncode == 1, wrong.stderr
    assert "certificate identity refused" in wrong.stderr
    half = cip("--manifest", str(manifest), "--certificate-identity", "mitr@redhat.com")
    assert half.returncode == 2
    assert "needs --certificate-identity and --certificate-oidc-issuer" in half.stderr
    assert tags_of(destination.host, "keyless") == []
