"""imgctl.trust._keys: key references (cosign key files, PEM keys) as signers and public keys."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imgctl.errors import KeyRefError, SignatureError
from imgctl.trust import PublicKey, load_public_key

DATA = Path(__file__).resolve().parents[1] / "data" / "cosign"
CONTAINERS_IMAGE = DATA / "containers-image"
PAYLOAD = b'{"critical":{"identity":{"docker-reference":"r.example/app"}},"optional":null}'


def _write_public(tmp_path: Path, key: object, name: str = "key.pub") -> Path:
    path = tmp_path / name
    path.write_bytes(
        key.public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _cosign_fixture(name: str) -> tuple[bytes, bytes]:
    """(payload, signature) of a containers/image sigstore-json signature fixture."""
    raw = (CONTAINERS_IMAGE / name).read_bytes()
    doc = json.loads(raw[raw.index(b"{") :])
    signature = doc["annotations"]["dev.cosignproject.cosign/signature"]
    return base64.b64decode(doc["payload"]), base64.b64decode(signature)


# --- PublicKey.verify ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture", ["dir-img-cosign-valid.signature-1", "dir-img-cosign-valid-2.signature-2"]
)
def test_real_cosign_signatures_verify_with_cosign_pub(fixture: str) -> None:
    payload, signature = _cosign_fixture(fixture)
    key = load_public_key(str(CONTAINERS_IMAGE / "cosign.pub"))
    key.verify(payload, signature)
    with pytest.raises(SignatureError):
        key.verify(payload + b" ", signature)
    other = load_public_key(str(CONTAINERS_IMAGE / "cosign2.pub"))
    with pytest.raises(SignatureError, match="does not verify"):
        other.verify(payload, signature)


def test_key_id_and_pem_round_trip() -> None:
    path = CONTAINERS_IMAGE / "cosign.pub"
    key = load_public_key(str(path))
    assert key.pem() == path.read_bytes()
    der = base64.b64decode("".join(path.read_text().splitlines()[1:-1]))
    assert key.key_id == hashlib.sha256(der).hexdigest()
    assert key.ref == str(path)
    assert key.algorithm == "ecdsa-p256"


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        (ec.SECP256R1(), hashes.SHA256()),
        (ec.SECP384R1(), hashes.SHA384()),
        (ec.SECP521R1(), hashes.SHA512()),
    ],
)
def test_ecdsa_uses_the_curve_digest(
    curve: ec.EllipticCurve, algorithm: hashes.HashAlgorithm
) -> None:
    private = ec.generate_private_key(curve)
    key = PublicKey(key=private.public_key(), ref="test")
    key.verify(PAYLOAD, private.sign(PAYLOAD, ec.ECDSA(algorithm)))
    wrong = hashes.SHA256() if not isinstance(algorithm, hashes.SHA256) else hashes.SHA384()
    with pytest.raises(SignatureError):
        key.verify(PAYLOAD, private.sign(PAYLOAD, ec.ECDSA(wrong)))


def test_ed25519_signs_the_payload_itself() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    key = PublicKey(key=private.public_key(), ref="test")
    key.verify(PAYLOAD, private.sign(PAYLOAD))
    with pytest.raises(SignatureError):
        key.verify(PAYLOAD, private.sign(hashlib.sha256(PAYLOAD).digest()))
    assert key.algorithm == "ed25519"


def test_rsa_pkcs1v15_and_pss() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = PublicKey(key=private.public_key(), ref="test")
    key.verify(PAYLOAD, private.sign(PAYLOAD, padding.PKCS1v15(), hashes.SHA256()))
    for salt in (padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
        key.verify(PAYLOAD, private.sign(PAYLOAD, pss, hashes.SHA256()))
    with pytest.raises(SignatureError):
        key.verify(PAYLOAD, private.sign(PAYLOAD, padding.PKCS1v15(), hashes.SHA512()))
    assert key.algorithm == "rsa-2048"


@pytest.mark.parametrize("signature", [b"", b"\x30\x00", b"garbage" * 20, b"\x00" * 256])
def test_malformed_signatures_are_signature_errors(signature: bytes) -> None:
    for public in (
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
    ):
        with pytest.raises(SignatureError):
            PublicKey(key=public, ref="test").verify(PAYLOAD, signature)


# --- load_public_key: PEM public key files ----------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    ],
)
def test_pem_public_keys_load(tmp_path: Path, make: object) -> None:
    private = make()  # type: ignore[operator]
    path = _write_public(tmp_path, private.public_key())
    key = load_public_key(str(path))
    assert key.pem() == path.read_bytes()


def test_unsupported_public_keys_are_refused(tmp_path: Path) -> None:
    small = _write_public(tmp_path, rsa.generate_private_key(65537, 1024).public_key(), "small.pub")
    with pytest.raises(KeyRefError, match="1024 bits"):
        load_public_key(str(small))
    k1 = _write_public(tmp_path, ec.generate_private_key(ec.SECP256K1()).public_key(), "k1.pub")
    with pytest.raises(KeyRefError, match="secp256k1"):
        load_public_key(str(k1))


def test_public_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyRefError, match="no such key file"):
        load_public_key(str(tmp_path / "missing.pub"))
    with pytest.raises(KeyRefError, match="is a directory"):
        load_public_key(str(tmp_path))
    with pytest.raises(KeyRefError, match="empty key reference"):
        load_public_key("")
    text = (CONTAINERS_IMAGE / "cosign.pub").read_text()
    truncated = tmp_path / "truncated.pub"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(KeyRefError, match="no matching END"):
        load_public_key(str(truncated))
    garbled = tmp_path / "garbled.pub"
    garbled.write_text(text.replace("MFkw", "MFk!"))
    with pytest.raises(KeyRefError, match="cannot be parsed"):
        load_public_key(str(garbled))
    not_pem = tmp_path / "not.pem"
    not_pem.write_bytes(b"\x00\x01binary")
    with pytest.raises(KeyRefError, match="not a PEM key file"):
        load_public_key(str(not_pem))
    huge = tmp_path / "huge.pub"
    huge.write_bytes(text.encode() + b"\n" * (1024 * 1024))
    with pytest.raises(KeyRefError, match="larger than 64 KiB"):
        load_public_key(str(huge))
