"""``imgctl sign`` / ``imgctl verify`` against real registries, refereed by the specification.

The referee is tests/support/cosign_spec.py: a verifier written from cosign's
specs/SIGNATURE_SPEC.md that shares no code with imgctl and reads the registry itself. It must
accept what ``imgctl sign`` pushed, and refuse it once one byte of the payload blob or of the
signature annotation is changed. imgctl's own verifier is checked on the same registry for its
per-signature reasons and exit codes (7: nothing verified, docs/signing.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imgctl.oci import Digest, Reference
from imgctl.remote import RegistryClient
from imgctl.trust import load_signer, sign_image

from ..conftest import FAST_RETRIES, IMGCTL, PushedImage
from ..support import cosign_spec
from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.registry import Registry
from ..support.skopeo import push_layout

DATA = Path(__file__).resolve().parents[1] / "data" / "containers-image-cosign"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class KeyPair:
    private: Path
    public: Path

    @property
    def public_pem(self) -> bytes:
        return self.public.read_bytes()


def _key_pair(directory: Path, name: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
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
    return KeyPair(key_path, pub_path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    made: dict[str, KeyPair] = {}

    def get(name: str) -> KeyPair:
        if name not in made:
            made[name] = _key_pair(directory, name)
        return made[name]

    return get


def imgctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def split(image: PushedImage) -> tuple[str, str, str]:
    """(host, repository, digest) of a pushed image."""
    ref = Reference.parse(image.ref)
    return ref.registry, ref.repository, image.digest


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def manifest_at(host: str, repository: str, tag: str) -> tuple[bytes, dict[str, Any]]:
    response = httpx.get(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.content, json.loads(response.content)


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


def put_manifest(host: str, repository: str, tag: str, data: bytes, media_type: str) -> None:
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        content=data,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def sign(image: str, key: KeyPair, *extra: str) -> subprocess.CompletedProcess[str]:
    return imgctl("sign", image, "--key", str(key.private), *extra)


def verify(image: str, *args: str) -> subprocess.CompletedProcess[str]:
    return imgctl("verify", image, *args)


def spec_verdicts(host: str, repository: str, digest: str, key: KeyPair) -> list[bool]:
    return [v.ok for v in cosign_spec.verify(f"http://{host}", repository, digest, key.public_pem)]


# ---------------------------------------------------------------------------------- sign


def test_sign_by_tag_signs_the_digest_and_the_spec_verifier_accepts_it(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=500)
    host, repository, digest = split(image)
    result = sign(image.ref, keys("a"), "-o", "json")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["digest"] == digest
    assert outcome["status"] == "signed"
    assert outcome["signature"] == f"{host}/{repository}:{sig_tag(digest)}"
    assert spec_verdicts(host, repository, digest, keys("a")) == [True]
    assert spec_verdicts(host, repository, digest, keys("b")) == [False]

    # The objects are cosign's: payload, layer, config.
    _, manifest = manifest_at(host, repository, sig_tag(digest))
    assert manifest["mediaType"] == OCI_MANIFEST
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIMPLE_SIGNING
    assert list(layer["annotations"]) == [SIGNATURE]
    payload = httpx.get(f"http://{host}/v2/{repository}/blobs/{layer['digest']}").content
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"' + f"{host}/{repository}".encode() + b'"},'
        b'"image":{"docker-manifest-digest":"' + digest.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    config = httpx.get(f"http://{host}/v2/{repository}/blobs/{manifest['config']['digest']}")
    assert config.content == (
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":'
        b'"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["'
        + layer["digest"].encode()
        + b'"]},"config":{}}'
    )

    text = sign(image.ref, keys("a"))
    assert text.returncode == 0
    assert text.stdout.startswith(f"already signed {host}/{repository}@{digest} with ")


def test_annotations_go_into_the_payload(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    result = sign(image.ref, keys("a"), "-a", "env=prod", "-a", "by=<imgctl>")
    assert result.returncode == 0, result.stderr
    _, manifest = manifest_at(host, repository, sig_tag(digest))
    blob = httpx.get(f"http://{host}/v2/{repository}/blobs/{manifest['layers'][0]['digest']}")
    # Go's encoding: map keys sorted, < and > escaped.
    assert blob.content.endswith(b'"optional":{"by":"\\u003cimgctl\\u003e","env":"prod"}}')
    assert spec_verdicts(host, repository, digest, keys("a")) == [True]
    assert sign(image.ref, keys("a"), "-a", "no-equals-sign").returncode == 2


@pytest.mark.parametrize("target", ["payload blob", "payload on disk", "signature annotation"])
def test_one_changed_byte_is_refused_by_both_verifiers(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], KeyPair],
    target: str,
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    assert sign(image.ref, keys("a")).returncode == 0
    _, manifest = manifest_at(host, repository, sig_tag(digest))
    layer = manifest["layers"][0]
    payload = httpx.get(f"http://{host}/v2/{repository}/blobs/{layer['digest']}").content
    # One hex digit of the signed digest: still a well-formed payload, for another image.
    index = payload.index(b'"docker-manifest-digest":"sha256:') + len(
        b'"docker-manifest-digest":"sha256:'
    )
    flipped = b"1" if payload[index : index + 1] != b"1" else b"2"
    changed = payload[:index] + flipped + payload[index + 1 :]
    if target == "payload blob":
        # The changed payload pushed as its own blob; the manifest points at it.
        layer["digest"] = push_blob(host, repository, changed)
        put_manifest(host, repository, sig_tag(digest), json.dumps(manifest).encode(), OCI_MANIFEST)
        expected = "signed by another key"
    elif target == "payload on disk":
        # The registry's stored bytes changed under the same digest.
        registry.blob_path(layer["digest"]).write_bytes(changed)
        expected = "layer blob does not match its digest"
    else:
        signature = bytearray(base64.b64decode(layer["annotations"][SIGNATURE]))
        signature[-1] ^= 0x01
        layer["annotations"][SIGNATURE] = base64.b64encode(bytes(signature)).decode()
        put_manifest(host, repository, sig_tag(digest), json.dumps(manifest).encode(), OCI_MANIFEST)
        expected = "signed by another key"
    assert spec_verdicts(host, repository, digest, keys("a")) == [False]
    result = verify(image.ref, "--key", str(keys("a").public), "-o", "json")
    assert result.returncode == 7, result.stderr
    report = json.loads(result.stdout)
    assert [(s["verified"], s["reason"]) for s in report["signatures"]] == [(False, expected)]


def test_a_second_key_appends_and_keeps_the_first_signature(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    assert sign(image.ref, keys("a")).returncode == 0
    _, first = manifest_at(host, repository, sig_tag(digest))
    assert sign(image.ref, keys("b")).returncode == 0
    raw, both = manifest_at(host, repository, sig_tag(digest))
    assert both["layers"][0] == first["layers"][0]
    assert len(both["layers"]) == 2
    assert spec_verdicts(host, repository, digest, keys("a")) == [True, False]
    assert spec_verdicts(host, repository, digest, keys("b")) == [False, True]

    again = sign(image.ref, keys("b"), "-o", "json")
    assert json.loads(again.stdout)["status"] == "already-signed"
    assert manifest_at(host, repository, sig_tag(digest))[0] == raw

    result = verify(image.ref, "--key", str(keys("a").public), "--key", str(keys("b").public))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["verified", "verified"]
    assert lines[0].endswith(f"verified with key {keys('a').public}")
    assert lines[1].endswith(f"verified with key {keys('b').public}")
    assert "2 of 2 signatures verified" in result.stderr


def test_verify_says_why_each_signature_did_not_verify(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    other = push_image(registry, repository=repository, tag="other", layers=1, layer_size=301)
    assert sign(image.ref, keys("a")).returncode == 0
    assert sign(image.ref, keys("b")).returncode == 0
    # A signature of another image of the repository copied under this digest's tag.
    assert sign(other.ref, keys("a")).returncode == 0
    _, theirs = manifest_at(host, repository, sig_tag(other.digest))
    _, ours = manifest_at(host, repository, sig_tag(digest))
    ours["layers"].append(theirs["layers"][0])
    put_manifest(host, repository, sig_tag(digest), json.dumps(ours).encode(), OCI_MANIFEST)

    result = verify(image.ref, "--key", str(keys("a").public), "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digest"] == digest
    assert report["verified"] is True
    assert [(s["verified"], s["reason"]) for s in report["signatures"]] == [
        (True, f"verified with key {keys('a').public}"),
        (False, "signed by another key"),
        (False, f"payload is for {other.digest}"),
    ]

    refused = verify(image.ref, "--key", str(keys("c").public))
    assert refused.returncode == 7
    assert refused.stdout.splitlines()[0].split()[0] == "refused"
    assert f"no signature of {host}/{repository}@{digest} verified (3 found)" in refused.stderr

    # The payload names this repository; another one is refused unless allowed.
    named = verify(
        image.ref, "--key", str(keys("a").public), "--signed-identity", "example.com/elsewhere"
    )
    assert named.returncode == 7
    assert f"payload names {host}/{repository}" in named.stdout
    assert (
        verify(
            image.ref,
            "--key",
            str(keys("a").public),
            "--signed-identity",
            f"{host}/{repository}:ignored-tag",
        ).returncode
        == 0
    )


def test_verify_without_signatures_or_keys(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    result = verify(image.ref, "--key", str(keys("a").public))
    assert result.returncode == 7
    assert f"no signature of {host}/{repository}@{digest} verified: it has no signatures" in (
        result.stderr
    )
    assert verify(image.ref).returncode == 2
    missing = verify(image.ref, "--key", "/nonexistent/cosign.pub")
    assert missing.returncode == 2
    assert "no such key file" in missing.stderr
    unknown = verify(f"{host}/{repository}:no-such-tag", "--key", str(keys("a").public))
    assert unknown.returncode == 5


# ------------------------------------------------------------------- bad signature manifests


def _index_at_sig_tag(host: str, repository: str, digest: str) -> bytes:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    put_manifest(host, repository, sig_tag(digest), body, OCI_INDEX)
    return body


def _huge_annotation_at_sig_tag(host: str, repository: str, digest: str) -> bytes:
    payload = b'{"not":"a payload"}'
    layer_digest = push_blob(host, repository, payload)
    config = b"{}"
    config_digest = push_blob(host, repository, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": SIMPLE_SIGNING,
                    "digest": layer_digest,
                    "size": len(payload),
                    "annotations": {SIGNATURE: "A" * (100 * 1024)},
                }
            ],
        }
    ).encode()
    put_manifest(host, repository, sig_tag(digest), body, OCI_MANIFEST)
    return body


def _duplicate_keys_at_sig_tag(host: str, repository: str, digest: str) -> bytes:
    config = b"{}"
    config_digest = push_blob(host, repository, config)
    descriptor = json.dumps(
        {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        }
    )
    body = (
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{descriptor},'
        f'"layers":[],"layers":[]}}'
    ).encode()
    put_manifest(host, repository, sig_tag(digest), body, OCI_MANIFEST)
    return body


@pytest.mark.parametrize(
    ("plant", "message", "verify_code"),
    [
        (_index_at_sig_tag, "is malformed: a application/vnd.oci.image.index.v1+json", 7),
        (
            _huge_annotation_at_sig_tag,
            f"layer 0 annotation {SIGNATURE} is 102400 bytes; refusing more than 64 KiB",
            7,
        ),
        (_duplicate_keys_at_sig_tag, "is malformed: manifest: duplicate key 'layers'", 7),
    ],
    ids=["index", "huge annotation", "duplicate keys"],
)
def test_a_bad_signature_manifest_is_a_clear_error_and_nothing_is_written(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    keys: Callable[[str], KeyPair],
    plant: Callable[[str, str, str], bytes],
    message: str,
    verify_code: int,
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    planted = plant(host, repository, digest)
    result = sign(image.ref, keys("a"))
    assert result.returncode == 7, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"imgctl: error: signature manifest {host}/{repository}:")
    assert message in line
    assert manifest_at(host, repository, sig_tag(digest))[0] == planted
    checked = verify(image.ref, "--key", str(keys("a").public))
    assert checked.returncode == verify_code
    if plant is _huge_annotation_at_sig_tag:
        # verify judges the layer (refused, with the reason) instead of giving up.
        assert checked.stdout.split(None, 2)[2].strip() == (
            f"annotation {SIGNATURE} is 102400 bytes; refusing more than 64 KiB"
        )
    else:
        assert message in checked.stderr


# ------------------------------------------------------------------------ concurrency


class _RacingClient(RegistryClient):
    """Another signer's manifest lands right after ours, once: our layer is lost."""

    rival: tuple[bytes, str] | None = None

    async def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> Digest:
        digest = await super().put_manifest(ref, data, media_type)
        if self.rival is not None and ref.tag and ref.tag.endswith(".sig"):
            rival_data, rival_type = self.rival
            self.rival = None
            await super().put_manifest(ref, rival_data, rival_type)
        return digest


async def test_a_layer_lost_to_a_concurrent_signer_is_appended_again(
    registry: Registry, push_image: Callable[..., PushedImage], keys: Callable[[str], KeyPair]
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    pinned = Reference.parse(image.ref).with_digest(Digest.parse(digest))
    # The rival: what key b's signer pushes, having read no signature either.
    assert sign(image.ref, keys("b")).returncode == 0
    rival, _ = manifest_at(host, repository, sig_tag(digest))
    async with httpx.AsyncClient() as http:
        gone = await http.delete(
            f"http://{host}/v2/{repository}/manifests/sha256:{hashlib.sha256(rival).hexdigest()}"
        )
    assert gone.status_code == 202
    assert not registry.has_tag(repository, sig_tag(digest))
    async with _RacingClient(options=FAST_RETRIES) as client:
        client.rival = (rival, OCI_MANIFEST)
        outcome = await sign_image(client, pinned, load_signer(str(keys("a").private)))
    assert outcome.status == "signed"
    assert client.rival is None  # the rival did land over the first push
    assert spec_verdicts(host, repository, digest, keys("b")) == [True, False]
    assert spec_verdicts(host, repository, digest, keys("a")) == [False, True]


# ---------------------------------------------------------------------- keyless (CLI)


KEYLESS_SIG = DATA / "dir-img-cosign-fulcio-rekor-valid" / "signature-1"


def _plant_fixture_keyless_layer(host: str, repository: str, digest: str) -> None:
    """containers/image's real keyless layer, under this digest's .sig tag (it signs another)."""
    raw = KEYLESS_SIG.read_bytes()
    doc = json.loads(raw.partition(b"\n")[2])
    payload = base64.b64decode(doc["payload"])
    config = b"{}"
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": push_blob(host, repository, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING,
                "digest": push_blob(host, repository, payload),
                "size": len(payload),
                "annotations": doc["annotations"],
            }
        ],
    }
    put_manifest(host, repository, sig_tag(digest), json.dumps(body).encode(), OCI_MANIFEST)


def _public_good_trusted_root() -> Path:
    import sigstore

    root = Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    return root / "trusted_root.json"


@pytest.mark.parametrize("trust", ["pem files", "trusted_root.json"])
def test_keyless_verify_checks_certificate_log_and_identity_through_the_registry(
    registry: Registry, push_image: Callable[..., PushedImage], trust: str
) -> None:
    image = push_image(registry, layers=1, layer_size=300)
    host, repository, digest = split(image)
    _plant_fixture_keyless_layer(host, repository, digest)
    if trust == "pem files":
        material = [
            "--certificate-chain",
            str(DATA / "fulcio_v1.crt.pem"),
            "--rekor-public-key",
            str(DATA / "rekor.pub"),
        ]
    else:
        material = ["--trusted-root", str(_public_good_trusted_root())]
    identity = ["--certificate-identity", "mitr@redhat.com"]
    issuer = ["--certificate-oidc-issuer", "https://github.com/login/oauth"]
    # Certificate, chain, Rekor SET and entry, signature and identity all check out; only the
    # payload is for the image containers/image signed, not this one.
    result = verify(image.ref, *identity, *issuer, *material)
    assert result.returncode == 7
    assert result.stdout.split(None, 2)[2].strip() == (
        "payload is for sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
    )
    wrong = verify(image.ref, "--certificate-identity", "someone@example.com", *issuer, *material)
    assert "certificate identity refused: Certificate's SANs do not match" in wrong.stdout
    half = verify(image.ref, *identity, *material)
    assert half.returncode == 2
    assert "needs --certificate-identity and --certificate-oidc-issuer" in half.stderr


def test_keyless_sign_without_a_token_or_a_fulcio_fails_before_writing(
    registry: Registry, push_image: Callable[..., PushedImage], tmp_path: Path
) -> None:
    import os

    import jwt
    import sigstore

    image = push_image(registry, layers=1, layer_size=300)
    _, repository, digest = split(image)
    env = {k: v for k, v in os.environ.items() if k != "SIGSTORE_ID_TOKEN"}
    result = imgctl("sign", image.ref, "--keyless", env=env)
    assert result.returncode == 2
    assert "--keyless needs an OIDC identity token in $SIGSTORE_ID_TOKEN" in result.stderr

    # A well-formed token, and a trust config whose Fulcio is a closed port on this machine.
    store = Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    signing = json.loads((store / "signing_config.v0.2.json").read_text())
    from ..support.registry import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    for service in ("caUrls", "rekorTlogUrls", "tsaUrls", "oidcUrls"):
        for entry in signing[service]:
            entry["url"] = closed
    config = tmp_path / "trust-config.json"
    config.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": json.loads((store / "trusted_root.json").read_text()),
                "signingConfig": signing,
            }
        )
    )
    import time

    now = int(time.time())
    token = jwt.encode(
        {
            "iss": "https://issuer.example",
            "sub": "ci@example.com",
            "aud": "sigstore",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        },
        "test-only-secret-of-32-bytes-min",
        algorithm="HS256",
    )
    env["SIGSTORE_ID_TOKEN"] = token
    result = imgctl("sign", image.ref, "--keyless", "--trust-config", str(config), env=env)
    assert result.returncode == 6, result.stderr
    assert "keyless signing: getting a certificate from Fulcio: cannot reach the service" in (
        result.stderr
    )
    assert not registry.has_tag(repository, sig_tag(digest))


# ------------------------------------------------------------------- embedded registry


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRegistry]:
    server = start_embedded(tmp_path_factory.mktemp("embedded-sign") / "root", request.addfinalizer)
    yield server
    assert "Traceback" not in server.output()


def test_sign_and_verify_on_the_embedded_registry(
    embedded: EmbeddedRegistry,
    layouts: Callable[..., Any],
    repo: Callable[[str], str],
    keys: Callable[[str], KeyPair],
) -> None:
    built = layouts(tag="v1", layers=1, layer_size=400)
    repository = repo("signed")
    ref = f"{embedded.host}/{repository}:v1"
    push_layout(built.oci_ref, ref)
    assert sign(ref, keys("a")).returncode == 0
    assert sign(ref, keys("b")).returncode == 0
    assert spec_verdicts(embedded.host, repository, built.digest, keys("a")) == [True, False]
    assert spec_verdicts(embedded.host, repository, built.digest, keys("b")) == [False, True]
    result = verify(ref, "--key", str(keys("a").public), "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["verified"] for s in report["signatures"]] == [True, False]


def test_verify_reads_cosign_referrers_on_the_embedded_registry(
    embedded: EmbeddedRegistry,
    layouts: Callable[..., Any],
    repo: Callable[[str], str],
    keys: Callable[[str], KeyPair],
) -> None:
    built = layouts(tag="v1", layers=1, layer_size=410)
    repository = repo("referred")
    ref = f"{embedded.host}/{repository}:v1"
    push_layout(built.oci_ref, ref)
    host = embedded.host
    # Key b's signature as cosign --experimental-oci11 stores it: a referrer of the image whose
    # config media type and artifactType are cosign's signature artifact type.
    assert sign(ref, keys("b")).returncode == 0
    _, referrer = manifest_at(host, repository, sig_tag(built.digest))
    subject_raw, subject = manifest_at(host, repository, "v1")
    artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json"
    referrer["config"]["mediaType"] = artifact_type
    referrer["artifactType"] = artifact_type
    referrer["subject"] = {
        "mediaType": subject["mediaType"],
        "digest": built.digest,
        "size": len(subject_raw),
    }
    body = json.dumps(referrer).encode()
    put_manifest(host, repository, "sha256:" + hashlib.sha256(body).hexdigest(), body, OCI_MANIFEST)
    # The .sig tag then holds key a's signature only.
    tagged = dict(referrer)
    del tagged["artifactType"], tagged["subject"]
    tagged["config"] = dict(tagged["config"], mediaType="application/vnd.oci.image.config.v1+json")
    tagged["layers"] = []
    put_manifest(host, repository, sig_tag(built.digest), json.dumps(tagged).encode(), OCI_MANIFEST)
    assert sign(ref, keys("a")).returncode == 0
    assert spec_verdicts(host, repository, built.digest, keys("a")) == [True]

    result = verify(
        ref, "--key", str(keys("a").public), "--key", str(keys("b").public), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["reason"] for s in report["signatures"]] == [
        f"verified with key {keys('a').public}",
        f"verified with key {keys('b').public}",
    ]
    only_b = verify(ref, "--key", str(keys("b").public))
    assert only_b.returncode == 0
    assert only_b.stdout.splitlines()[1].startswith("verified")
