"""imgctl's verifier against real cosign output: containers/image's sigstore fixtures.

The verdicts expected are containers/image's own (signature/policy_eval_sigstore_test.go), see
tests/data/containers-image-cosign/README.md. Each refusal is checked for its reason, so a
verifier that refused everything, or for the wrong reason, fails here.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imgctl.oci import Descriptor, Digest, Reference
from imgctl.trust import (
    SIGNATURE_MEDIA_TYPE,
    KeylessIdentity,
    PublicKey,
    TrustPolicy,
    load_public_key,
    simple_signing_payload,
    verify_signature_layer,
)
from imgctl.trust._cosign import judge_layer

DATA = Path(__file__).resolve().parents[1] / "data" / "containers-image-cosign"
SIGNATURE = "dev.cosignproject.cosign/signature"
CERTIFICATE = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"
BUNDLE = "dev.sigstore.cosign/bundle"

SINGLE = "192.168.64.2:5000/cosign-signed-single-sample"
KEY_REKOR = "192.168.64.2:5000/cosign-signed/key-1"
FULCIO_REKOR = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"
VALID_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
EMAIL, ISSUER = "mitr@redhat.com", "https://github.com/login/oauth"


@dataclass
class Layer:
    mime_type: str
    payload: bytes
    annotations: dict[str, str]


def layer(path: str) -> Layer:
    """A signature file in containers/image's dir format: NUL, format name, newline, JSON."""
    raw = (DATA / path).read_bytes()
    header, _, body = raw.partition(b"\n")
    assert header == b"\x00sigstore-json"
    doc = json.loads(body)
    return Layer(doc["mimeType"], base64.b64decode(doc["payload"]), doc["annotations"])


def image(directory: str, name: str) -> Reference:
    """``name`` pinned to the sha256 of the fixture's manifest.json."""
    digest = Digest.of((DATA / directory / "manifest.json").read_bytes())
    return Reference.parse(name).with_digest(digest)


def key(name: str) -> PublicKey:
    return load_public_key(str(DATA / name))


def keys(*names: str) -> TrustPolicy:
    return TrustPolicy(keys=tuple(key(n) for n in names))


def keyless(
    identity: str = EMAIL,
    issuer: str = ISSUER,
    roots: bytes | None = None,
    rekor: tuple[bytes, ...] | None = None,
) -> TrustPolicy:
    return TrustPolicy(
        keyless=(
            KeylessIdentity(
                identity,
                issuer,
                (DATA / "fulcio_v1.crt.pem").read_bytes() if roots is None else roots,
                ((DATA / "rekor.pub").read_bytes(),) if rekor is None else rekor,
            ),
        )
    )


def judge(sig: Layer, ref: Reference, policy: TrustPolicy) -> tuple[bool, str, str | None]:
    check = verify_signature_layer(sig.payload, sig.annotations, ref, policy)
    assert check.layer == Digest.of(sig.payload)
    return check.ok, check.reason, check.signer


# --- key signatures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names", [("cosign.pub",), ("cosign.pub", "cosign2.pub"), ("cosign2.pub", "cosign.pub")]
)
def test_valid_is_accepted_by_any_key_list_holding_its_key(names: tuple[str, ...]) -> None:
    ok, reason, signer = judge(
        layer("dir-img-cosign-valid/signature-1"),
        image("dir-img-cosign-valid", SINGLE),
        keys(*names),
    )
    assert ok, reason
    assert reason == f"verified with key {DATA / 'cosign.pub'}"
    assert signer == str(DATA / "cosign.pub")


def test_valid_is_refused_by_another_key() -> None:
    assert judge(
        layer("dir-img-cosign-valid/signature-1"),
        image("dir-img-cosign-valid", SINGLE),
        keys("cosign2.pub"),
    ) == (False, "signed by another key", None)


def test_valid_2_both_signatures_verify() -> None:
    ref = image("dir-img-cosign-valid-2", SINGLE)
    for name in ("signature-1", "signature-2"):
        ok, reason, _ = judge(layer(f"dir-img-cosign-valid-2/{name}"), ref, keys("cosign.pub"))
        assert ok, (name, reason)
    # Two different signatures (ECDSA is randomised) over the same payload.
    one, two = (layer(f"dir-img-cosign-valid-2/signature-{n}") for n in (1, 2))
    assert one.payload == two.payload
    assert one.annotations[SIGNATURE] != two.annotations[SIGNATURE]


def test_mixed_refuses_the_unknown_key_and_accepts_the_valid_one() -> None:
    ref = image("dir-img-cosign-mixed", SINGLE)
    policy = keys("cosign.pub")
    assert judge(layer("dir-img-cosign-mixed/signature-1"), ref, policy) == (
        False,
        "signed by another key",
        None,
    )
    assert judge(layer("dir-img-cosign-mixed/signature-2"), ref, policy)[0]


def test_unknown_key_signature_is_refused() -> None:
    assert judge(
        layer("unknown-cosign-key.signature"),
        image("dir-img-cosign-valid", SINGLE),
        keys("cosign.pub"),
    ) == (False, "signed by another key", None)


def test_modified_manifest_is_refused_as_payload_for_another_digest() -> None:
    ref = image("dir-img-cosign-modified-manifest", SINGLE)
    assert str(ref.digest) != VALID_DIGEST
    assert judge(
        layer("dir-img-cosign-modified-manifest/signature-1"), ref, keys("cosign.pub")
    ) == (
        False,
        f"payload is for {VALID_DIGEST}",
        None,
    )


def test_manifest_digest_error_is_refused_as_payload_for_another_digest() -> None:
    # containers/image cannot even digest this schema 1 manifest; whatever digest the image
    # has, it is not the one the payload names.
    ref = image("dir-img-cosign-manifest-digest-error", SINGLE)
    ok, reason, _ = judge(
        layer("dir-img-cosign-manifest-digest-error/signature-1"), ref, keys("cosign.pub")
    )
    assert (ok, reason) == (False, f"payload is for {VALID_DIGEST}")


def test_other_attachment_is_not_a_signature_layer() -> None:
    sig = layer("dir-img-cosign-other-attachment/signature-1")
    assert sig.mime_type == "text/plain"
    ref = image("dir-img-cosign-other-attachment", SINGLE)
    descriptor = Descriptor(
        sig.mime_type, Digest.of(sig.payload), len(sig.payload), annotations=sig.annotations
    )
    check = judge_layer(descriptor, sig.payload, ref, keys("cosign.pub"))
    assert (check.ok, check.reason) == (False, "not a signature layer (text/plain)")
    # Read as a payload all the same, it is not one.
    ok, reason, _ = judge(sig, ref, keys("cosign.pub"))
    assert not ok
    assert reason.startswith("malformed payload: payload: not JSON")


def test_valid_with_tag_matches_its_repository_whatever_the_tag() -> None:
    sig = layer("dir-img-cosign-valid-with-tag/signature-1")
    policy = keys("cosign.pub")
    for name in ("192.168.64.2:5000/skopeo-signed", "192.168.64.2:5000/skopeo-signed:othertag"):
        ok, reason, _ = judge(sig, image("dir-img-cosign-valid-with-tag", name), policy)
        assert ok, (name, reason)
    ok, reason, _ = judge(sig, image("dir-img-cosign-valid-with-tag", SINGLE), policy)
    assert (ok, reason) == (False, "payload names 192.168.64.2:5000/skopeo-signed:tag")


def test_identity_policy() -> None:
    sig = layer("dir-img-cosign-valid/signature-1")
    other = image("dir-img-cosign-valid", "testing/manifest:notlatest")
    base = keys("cosign.pub")
    assert judge(sig, other, base)[:2] == (False, f"payload names {SINGLE}")
    # containers/image's "this/does-not:match" exact reference.
    nonmatching = TrustPolicy(keys=base.keys, identities=("this/does-not:match",))
    assert judge(sig, image("dir-img-cosign-valid", SINGLE), nonmatching)[:2] == (
        False,
        f"payload names {SINGLE}",
    )
    signed = TrustPolicy(keys=base.keys, identities=(f"{SINGLE}:any-tag", "this/does-not"))
    assert judge(sig, other, signed)[0]
    anything = TrustPolicy(keys=base.keys, any_identity=True)
    assert judge(sig, other, anything)[0]


def test_key_rekor_valid_verifies_with_its_key() -> None:
    sig = layer("dir-img-cosign-key-rekor-valid/signature-1")
    ref = image("dir-img-cosign-key-rekor-valid", KEY_REKOR)
    assert judge(sig, ref, keys("cosign2.pub"))[0]
    assert judge(sig, ref, keys("cosign.pub"))[:2] == (False, "signed by another key")


def test_payloads_are_byte_for_byte_what_imgctl_writes() -> None:
    for path, name in [
        ("dir-img-cosign-valid/signature-1", SINGLE),
        ("dir-img-cosign-key-rekor-valid/signature-1", KEY_REKOR),
        ("dir-img-cosign-fulcio-rekor-valid/signature-1", FULCIO_REKOR),
    ]:
        sig = layer(path)
        digest = json.loads(sig.payload)["critical"]["image"]["docker-manifest-digest"]
        assert simple_signing_payload(name, Digest.parse(digest)) == sig.payload


def test_signature_annotation_problems() -> None:
    sig = layer("dir-img-cosign-valid/signature-1")
    ref = image("dir-img-cosign-valid", SINGLE)
    policy = keys("cosign.pub")
    invalid = Layer(
        sig.mime_type, sig.payload, {SIGNATURE: base64.b64encode(b"invalid signature").decode()}
    )
    assert judge(invalid, ref, policy)[:2] == (False, "signed by another key")
    assert judge(Layer(sig.mime_type, sig.payload, {}), ref, policy)[:2] == (
        False,
        f"no signature annotation ({SIGNATURE})",
    )
    garbled = Layer(sig.mime_type, sig.payload, {SIGNATURE: "not base64!"})
    assert judge(garbled, ref, policy)[:2] == (
        False,
        "malformed signature annotation is not base64",
    )


def test_huge_annotation_is_refused_before_anything_else() -> None:
    sig = layer("dir-img-cosign-valid/signature-1")
    huge = Layer(sig.mime_type, sig.payload, {**sig.annotations, "x": "a" * (64 * 1024 + 1)})
    ok, reason, _ = judge(huge, image("dir-img-cosign-valid", SINGLE), keys("cosign.pub"))
    assert (ok, reason) == (False, "annotation x is 65537 bytes; refusing more than 64 KiB")
    # At the limit it is only an unknown annotation, which a signature may carry.
    fits = Layer(sig.mime_type, sig.payload, {**sig.annotations, "x": "a" * (64 * 1024)})
    assert judge(fits, image("dir-img-cosign-valid", SINGLE), keys("cosign.pub"))[0]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"identity":{"docker-reference"'
            b':"c/d"},"image":{"docker-manifest-digest":"' + VALID_DIGEST.encode() + b'"},'
            b'"type":"cosign container image signature"},"optional":null}',
            "payload: duplicate key 'identity'",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest"'
            b':"' + VALID_DIGEST.encode() + b'"},"type":"cosign container image signature"}}',
            "payload has no optional",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest"'
            b':"' + VALID_DIGEST.encode() + b'"},"type":"cosign container image signature",'
            b'"extra":1},"optional":null}',
            "critical has unexpected extra",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":["a/b"]},"image":{"docker-manifest-'
            b'digest":"' + VALID_DIGEST.encode() + b'"},"type":"cosign container image signature"'
            b'},"optional":null}',
            "critical.identity.docker-reference is not a string",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest"'
            b':"' + VALID_DIGEST.encode() + b'"},"type":"atomic container signature"},'
            b'"optional":null}',
            "critical.type is 'atomic container signature', not 'cosign container image signature'",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest"'
            b':"sha256:abc"},"type":"cosign container image signature"},"optional":null}',
            "critical.image.docker-manifest-digest: invalid digest 'sha256:abc'",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest"'
            b':"' + VALID_DIGEST.encode() + b'"},"type":"cosign container image signature"},'
            b'"optional":7}',
            "payload.optional is not an object or null",
        ),
        (b"[]", "payload is not a JSON object"),
    ],
)
def test_payloads_are_parsed_strictly(payload: bytes, reason: str) -> None:
    sig = layer("dir-img-cosign-valid/signature-1")
    check = verify_signature_layer(
        payload, sig.annotations, image("dir-img-cosign-valid", SINGLE), keys("cosign.pub")
    )
    assert not check.ok
    assert check.reason.startswith(f"malformed payload: {reason}"), check.reason


def test_judge_layer_checks_the_blob_against_its_descriptor() -> None:
    sig = layer("dir-img-cosign-valid/signature-1")
    ref = image("dir-img-cosign-valid", SINGLE)
    policy = keys("cosign.pub")

    def descriptor(size: int | None = None, media_type: str = SIGNATURE_MEDIA_TYPE) -> Descriptor:
        size = len(sig.payload) if size is None else size
        return Descriptor(media_type, Digest.of(sig.payload), size, annotations=sig.annotations)

    assert judge_layer(descriptor(), sig.payload, ref, policy).ok
    changed = sig.payload.replace(b"single", b"singlE")
    assert judge_layer(descriptor(), changed, ref, policy).reason == (
        "layer blob does not match its digest"
    )
    assert judge_layer(descriptor(), sig.payload + b" ", ref, policy).reason == (
        "layer blob does not match its digest"
    )
    assert judge_layer(descriptor(), None, ref, policy).reason == (
        "layer blob is missing from the registry"
    )
    assert judge_layer(descriptor(size=2 * 1024 * 1024), None, ref, policy).reason == (
        "payload is 2097152 bytes; refusing more than 1 MiB"
    )


# --- keyless -------------------------------------------------------------------------------


FULCIO = "dir-img-cosign-fulcio-rekor-valid"


def fulcio_sig(**changes: str | None) -> Layer:
    sig = layer(f"{FULCIO}/signature-1")
    annotations = dict(sig.annotations)
    for name, value in changes.items():
        annotation = {"certificate": CERTIFICATE, "chain": CHAIN, "bundle": BUNDLE}[name]
        if value is None:
            del annotations[annotation]
        else:
            annotations[annotation] = value
    return Layer(sig.mime_type, sig.payload, annotations)


def fulcio_ref() -> Reference:
    return image(FULCIO, FULCIO_REKOR)


@pytest.mark.parametrize(
    "rekor",
    [("rekor.pub",), ("rekor.pub", "cosign.pub"), ("cosign.pub", "rekor.pub")],
)
def test_keyless_valid_is_accepted(rekor: tuple[str, ...]) -> None:
    policy = keyless(rekor=tuple((DATA / name).read_bytes() for name in rekor))
    ok, reason, signer = judge(fulcio_sig(), fulcio_ref(), policy)
    assert (ok, reason, signer) == (True, f"verified keyless: {EMAIL} ({ISSUER})", EMAIL)


def test_keyless_with_another_identity_is_refused() -> None:
    ok, reason, _ = judge(
        fulcio_sig(), fulcio_ref(), keyless(identity="this-does-not-match@example.com")
    )
    assert not ok
    assert reason.startswith("certificate identity refused: Certificate's SANs do not match")


def test_keyless_with_another_issuer_is_refused() -> None:
    ok, reason, _ = judge(fulcio_sig(), fulcio_ref(), keyless(issuer="https://accounts.google.com"))
    assert not ok
    assert reason.startswith(
        "certificate identity refused: Certificate's OIDCIssuer does not match"
    )


def _self_signed_root() -> bytes:
    private = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-sigstore")])
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650 * 2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
        )
        .sign(private, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_keyless_under_an_untrusted_root_is_refused() -> None:
    ok, reason, _ = judge(fulcio_sig(), fulcio_ref(), keyless(roots=_self_signed_root()))
    assert not ok
    assert reason.startswith(
        "the certificate does not chain to a trusted Fulcio root at 2023-01-20T20:51:33Z"
    )


def test_keyless_needs_the_chain_unless_the_intermediate_is_trusted() -> None:
    ok, reason, _ = judge(fulcio_sig(chain=None), fulcio_ref(), keyless())
    assert not ok
    assert reason.startswith("the certificate does not chain to a trusted Fulcio root")
    trusting_intermediate = keyless(roots=(DATA / "fulcio-chain").read_bytes())
    assert judge(fulcio_sig(chain=None), fulcio_ref(), trusting_intermediate)[0]


def test_keyless_with_a_set_by_another_rekor_key_is_refused() -> None:
    ok, reason, _ = judge(
        fulcio_sig(), fulcio_ref(), keyless(rekor=((DATA / "cosign.pub").read_bytes(),))
    )
    assert (ok, reason) == (False, "the Rekor bundle is not signed by a trusted Rekor key")


def test_keyless_bundle_and_certificate_problems() -> None:
    ref, policy = fulcio_ref(), keyless()
    assert judge(fulcio_sig(bundle=None), ref, policy)[1] == (
        f"no Rekor bundle ({BUNDLE}): a keyless signature needs the log's signed entry timestamp"
    )
    assert judge(fulcio_sig(bundle="this is not a valid SET"), ref, policy)[1].startswith(
        "malformed Rekor bundle: not JSON"
    )
    assert judge(fulcio_sig(certificate="this is not a valid certificate"), ref, policy)[1] == (
        "malformed certificate annotation: not a PEM certificate"
    )
    assert judge(fulcio_sig(certificate=None), ref, policy)[1] == (
        f"not a keyless signature (no {CERTIFICATE})"
    )
    # The key+Rekor fixture's bundle is a valid SET, but for another signature and key.
    other_bundle = layer("dir-img-cosign-key-rekor-valid/signature-1").annotations[BUNDLE]
    assert judge(fulcio_sig(bundle=other_bundle), ref, policy)[1] == (
        "the Rekor entry is for another signature"
    )


def test_keyless_signature_with_only_a_key_policy_names_its_certificate() -> None:
    assert judge(fulcio_sig(), fulcio_ref(), keys("cosign.pub"))[:2] == (
        False,
        f"signed by another key (a certificate for {EMAIL})",
    )


def test_keyless_payload_for_another_image_is_refused_after_the_signature_verifies() -> None:
    other = image("dir-img-cosign-valid", FULCIO_REKOR)
    ok, reason, _ = judge(fulcio_sig(), other, keyless())
    assert (ok, reason) == (
        False,
        "payload is for sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a",
    )
