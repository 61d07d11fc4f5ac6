"""imgctl.trust._keys: key references (cosign key files, PEM keys) as signers and public keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from imgctl.errors import KeyRefError, SignatureError
from imgctl.trust import PublicKey, generate_key_pair, load_public_key, load_signer
from imgctl.trust._kms import parse_awskms

DATA = Path(__file__).resolve().parents[1] / "data" / "cosign"
# Real cosign output from containers/image (origin and licence: that folder's README).
CONTAINERS_IMAGE = DATA.parent / "containers-image-cosign"
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
    "fixture", ["dir-img-cosign-valid/signature-1", "dir-img-cosign-valid-2/signature-2"]
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


def test_ed25519ph_is_accepted_rfc8032_vector() -> None:
    # RFC 8032 section 7.3, test "abc": Ed25519ph, what cosign signs with when it uploads to
    # a transparency log (sigstore's ED25519phVerifier: SHA-512 prehash, empty context).
    public = ed25519.Ed25519PublicKey.from_public_bytes(
        bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    )
    signature = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    key = PublicKey(key=public, ref="rfc8032")
    key.verify(b"abc", signature)
    with pytest.raises(SignatureError):
        key.verify(b"abd", signature)
    with pytest.raises(SignatureError):
        key.verify(b"abc", signature[:-1] + bytes([signature[-1] ^ 1]))


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


# --- cosign key files -------------------------------------------------------------------------

COSIGN_KEYS = DATA / "sigstore-cosign"
HELLO = {"COSIGN_PASSWORD": "hello"}


@pytest.mark.parametrize(
    ("name", "label", "n"),
    [
        ("keys_test.pemsigstorekey.key", "ENCRYPTED SIGSTORE PRIVATE KEY", 32768),
        ("keys_test.pemcosignkey.key", "ENCRYPTED COSIGN PRIVATE KEY", 32768),
        # Holds a SEC1 key where cosign wants PKCS#8 (cosign's own test expects it refused);
        # imgctl reads the key it holds.
        ("keys_test.pemcosigneckey.key", "ENCRYPTED COSIGN PRIVATE KEY", 65536),
    ],
)
def test_cosign_made_key_files_sign(name: str, label: str, n: int) -> None:
    path = COSIGN_KEYS / name
    text = path.read_text()
    assert text.startswith(f"-----BEGIN {label}-----")
    body = base64.b64decode("".join(text.splitlines()[1:-1]))
    assert json.loads(body)["kdf"]["params"]["N"] == n
    signer = load_signer(str(path), environ=HELLO)
    signature = signer.sign(PAYLOAD)
    signer.public_key().verify(PAYLOAD, signature)
    assert load_public_key(str(path), environ=HELLO).pem() == signer.public_key().pem()
    assert signer.ref == str(path)
    assert "hello" not in repr(signer)


def test_cosign_key_with_an_empty_password() -> None:
    path = DATA / "sigstore-rs" / "cosign_generated_encrypted_empty_private.key"
    signer = load_signer(str(path), environ={"COSIGN_PASSWORD": ""})
    signer.public_key().verify(PAYLOAD, signer.sign(PAYLOAD))
    with pytest.raises(KeyRefError, match="wrong password"):
        load_signer(str(path), environ=HELLO)


def test_wrong_and_missing_password() -> None:
    path = COSIGN_KEYS / "keys_test.pemsigstorekey.key"
    with pytest.raises(KeyRefError) as wrong:
        load_signer(str(path), environ={"COSIGN_PASSWORD": "hellO"})
    assert wrong.value.message == f"wrong password for {path}"
    assert "hellO" not in str(wrong.value)
    with pytest.raises(KeyRefError, match="COSIGN_PASSWORD is not set") as missing:
        load_signer(str(path), environ={})
    assert missing.value.hint is not None
    assert "COSIGN_PASSWORD" in missing.value.hint
    with pytest.raises(KeyRefError, match="wrong password"):
        load_public_key(str(path), environ={"COSIGN_PASSWORD": "x"})


def test_password_comes_from_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    load_signer(str(COSIGN_KEYS / "keys_test.pemsigstorekey.key"))
    monkeypatch.delenv("COSIGN_PASSWORD")
    with pytest.raises(KeyRefError, match="not set"):
        load_signer(str(COSIGN_KEYS / "keys_test.pemsigstorekey.key"))


def _cosign_doc(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))  # type: ignore[no-any-return]


def _write_cosign_doc(
    path: Path, doc: object, label: str = "ENCRYPTED SIGSTORE PRIVATE KEY"
) -> Path:
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    path.write_text("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["kdf"]["params"].update(N=2**20), "unsupported scrypt parameters N=1048576"),
        (lambda d: d["kdf"]["params"].update(N=2**40, r=2**20), "unsupported scrypt parameters"),
        (lambda d: d["kdf"]["params"].update(p=64), "unsupported scrypt parameters"),
        (lambda d: d["kdf"]["params"].update(N=16384), "unsupported scrypt parameters N=16384"),
        (lambda d: d["kdf"]["params"].update(N="32768"), "kdf.params.N is not an integer"),
        (lambda d: d["kdf"]["params"].update(r=True), "kdf.params.r is not an integer"),
        (lambda d: d["kdf"].update(name="argon2"), "unknown key derivation 'argon2'"),
        (lambda d: d["cipher"].update(name="aes-gcm"), "unknown cipher 'aes-gcm'"),
        (lambda d: d["cipher"].update(nonce="AAAA"), "nonce of 3 bytes"),
        (lambda d: d["kdf"].update(salt=""), "salt of 0 bytes"),
        (lambda d: d["kdf"].update(salt="!!"), "kdf.salt is not valid base64"),
        (lambda d: d.pop("ciphertext"), r"no ciphertext"),
        (lambda d: d.update(ciphertext=d["ciphertext"][:-8] + "AAAAAAA="), "wrong password"),
    ],
)
def test_damaged_or_absurd_cosign_key_files(tmp_path: Path, change: Any, message: str) -> None:
    doc = _cosign_doc(COSIGN_KEYS / "keys_test.pemsigstorekey.key")
    change(doc)
    path = _write_cosign_doc(tmp_path / "cosign.key", doc)
    with pytest.raises(KeyRefError, match=message):
        load_signer(str(path), environ=HELLO)


def test_garbled_cosign_pem(tmp_path: Path) -> None:
    text = (COSIGN_KEYS / "keys_test.pemsigstorekey.key").read_text()
    lines = text.splitlines()
    garbled = tmp_path / "garbled.key"
    garbled.write_text("\n".join([lines[0], "%%%%" + lines[1][4:], *lines[2:]]))
    with pytest.raises(KeyRefError, match="not valid base64"):
        load_signer(str(garbled), environ=HELLO)
    truncated = tmp_path / "truncated.key"
    truncated.write_text("\n".join(lines[:4]))
    with pytest.raises(KeyRefError, match="no matching END"):
        load_signer(str(truncated), environ=HELLO)
    not_json = tmp_path / "notjson.key"
    not_json.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        + base64.b64encode(b"[1, 2").decode()
        + "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyRefError, match="does not hold cosign's JSON"):
        load_signer(str(not_json), environ=HELLO)
    huge = tmp_path / "huge.key"
    huge.write_bytes(text.encode() * 200)
    with pytest.raises(KeyRefError, match="larger than 64 KiB"):
        load_signer(str(huge), environ=HELLO)


# --- plain PEM private keys -------------------------------------------------------------------


def _pem(private: Any, fmt: serialization.PrivateFormat, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private.private_bytes(serialization.Encoding.PEM, fmt, encryption)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("make", "fmt", "label"),
    [
        (
            lambda: ec.generate_private_key(ec.SECP256R1()),
            serialization.PrivateFormat.PKCS8,
            "PRIVATE KEY",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP256R1()),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "EC PRIVATE KEY",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP384R1()),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "EC PRIVATE KEY",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP521R1()),
            serialization.PrivateFormat.PKCS8,
            "PRIVATE KEY",
        ),
        (
            lambda: ed25519.Ed25519PrivateKey.generate(),
            serialization.PrivateFormat.PKCS8,
            "PRIVATE KEY",
        ),
        (
            lambda: rsa.generate_private_key(65537, 2048),
            serialization.PrivateFormat.PKCS8,
            "PRIVATE KEY",
        ),
        (
            lambda: rsa.generate_private_key(65537, 2048),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "RSA PRIVATE KEY",
        ),
    ],
)
def test_plain_pem_private_keys(tmp_path: Path, make: Any, fmt: Any, label: str) -> None:
    private = make()
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(private, fmt))
    assert path.read_text().startswith(f"-----BEGIN {label}-----")
    signer = load_signer(str(path), environ={})
    signature = signer.sign(PAYLOAD)
    # Checked with the key as cryptography holds it, not only through imgctl's PublicKey.
    expected = PublicKey(key=private.public_key(), ref="independent")
    expected.verify(PAYLOAD, signature)
    assert load_public_key(str(path), environ={}).key_id == expected.key_id


def test_rsa_signatures_are_pkcs1v15_sha256(tmp_path: Path) -> None:
    private = rsa.generate_private_key(65537, 2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(_pem(private, serialization.PrivateFormat.PKCS8))
    signature = load_signer(str(path), environ={}).sign(PAYLOAD)
    assert len(signature) == 256  # one RSA-2048 block
    private.public_key().verify(signature, PAYLOAD, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):  # the check above can fail: another hash fails it
        private.public_key().verify(signature, PAYLOAD, padding.PKCS1v15(), hashes.SHA384())


# The order of NIST P-384's group (FIPS 186-4, D.1.2.4): r and s of a signature lie below it.
P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def test_ecdsa_p384_signatures_use_sha384(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "p384.pem"
    path.write_bytes(_pem(private, serialization.PrivateFormat.PKCS8))
    signature = load_signer(str(path), environ={}).sign(PAYLOAD)
    r, s = decode_dss_signature(signature)  # DER, as cosign writes ECDSA signatures
    assert 0 < r < P384_ORDER
    assert 0 < s < P384_ORDER
    private.public_key().verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):  # the check above can fail: SHA-256 fails it
        private.public_key().verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_encrypted_pem_private_keys_use_cosign_password(tmp_path: Path, fmt: Any) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(_pem(private, fmt, b"s3cret"))
    signer = load_signer(str(path), environ={"COSIGN_PASSWORD": "s3cret"})
    PublicKey(key=private.public_key(), ref="x").verify(PAYLOAD, signer.sign(PAYLOAD))
    with pytest.raises(KeyRefError, match="wrong password"):
        load_signer(str(path), environ={"COSIGN_PASSWORD": "nope"})
    with pytest.raises(KeyRefError, match="COSIGN_PASSWORD is not set"):
        load_signer(str(path), environ={})


def test_unsupported_private_keys(tmp_path: Path) -> None:
    small = tmp_path / "small.pem"
    small.write_bytes(
        _pem(rsa.generate_private_key(65537, 1024), serialization.PrivateFormat.PKCS8)
    )
    with pytest.raises(KeyRefError, match="RSA key of 1024 bits"):
        load_signer(str(small), environ={})
    k1 = tmp_path / "k1.pem"
    k1.write_bytes(_pem(ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.PKCS8))
    with pytest.raises(KeyRefError, match="curve secp256k1 is not supported"):
        load_signer(str(k1), environ={})
    ed448 = tmp_path / "ed448.pem"
    ed448.write_bytes(_pem(Ed448PrivateKey.generate(), serialization.PrivateFormat.PKCS8))
    with pytest.raises(KeyRefError, match="Ed448PrivateKey keys are not supported"):
        load_signer(str(ed448), environ={})
    ssh = tmp_path / "id_ed25519"
    ssh.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(
        KeyRefError, match="'OPENSSH PRIVATE KEY' is not a private key imgctl reads"
    ):
        load_signer(str(ssh), environ={})


def test_public_key_cannot_sign() -> None:
    with pytest.raises(KeyRefError, match="is a public key: it cannot sign"):
        load_signer(str(CONTAINERS_IMAGE / "cosign.pub"), environ={})


def test_garbled_plain_private_key(tmp_path: Path) -> None:
    text = _pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8).decode()
    lines = text.splitlines()
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("\n".join([lines[0], lines[1][:10] + "AAAA" + lines[1][14:], *lines[2:]]))
    with pytest.raises(KeyRefError, match="cannot be parsed"):
        load_signer(str(garbled), environ={})


# --- key references that are not files --------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcpkms key references"),
        ("azurekms://vault.vault.azure.net/key", "azurekms key references"),
        ("hashivault://transit-key", "hashivault key references"),
        ("k8s://ns/secret", "k8s key references"),
        ("pkcs11:token=t;object=o", "pkcs11 key references"),
    ],
)
def test_kms_schemes_not_supported_yet(ref: str, message: str) -> None:
    for load in (load_signer, load_public_key):
        with pytest.raises(KeyRefError, match=message) as info:
            load(ref, environ={})
        assert "not supported yet" in info.value.message
        assert info.value.hint is not None
        assert "awskms://" in info.value.hint


def test_unknown_scheme_and_bad_awskms_refs() -> None:
    with pytest.raises(KeyRefError, match="unknown key reference scheme ftp://"):
        load_signer("ftp://example.com/key", environ={})
    for ref in ("awskms://", "awskms:///", "awskms:///not-a-key", "awskms://host/key/abc"):
        with pytest.raises(KeyRefError, match="not an AWS KMS key reference"):
            load_signer(ref, environ={})


@pytest.mark.parametrize(
    ("ref", "endpoint", "key", "region", "alias"),
    [
        (
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab",
            "",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            None,
            None,
        ),
        (
            "awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab",
            "localhost:4566",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            None,
            None,
        ),
        (
            "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab",
            "",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            None,
            None,
        ),
        (
            "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "",
            "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "us-east-2",
            None,
        ),
        ("awskms:///alias/ExampleAlias", "", "alias/ExampleAlias", None, "alias/ExampleAlias"),
        ("awskms://kms.local/alias/a/b", "kms.local", "alias/a/b", None, "alias/a/b"),
        (
            "awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/Example",
            "",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/Example",
            "us-gov-west-1",
            "alias/Example",
        ),
    ],
)
def test_awskms_reference_forms(
    ref: str, endpoint: str, key: str, region: str | None, alias: str | None
) -> None:
    # cosign's own examples (sigstore/pkg/signature/kms/aws).
    parsed = parse_awskms(ref)
    assert (parsed.endpoint, parsed.key, parsed.region, parsed.alias) == (
        endpoint,
        key,
        region,
        alias,
    )


# --- generate_key_pair ------------------------------------------------------------------------


def _independent_decrypt(path: Path, password: bytes) -> bytes:
    """Open a cosign key file with hashlib's scrypt and PyNaCl, sharing no code with imgctl."""
    import nacl.secret

    doc = _cosign_doc(path)
    params = doc["kdf"]["params"]
    key = hashlib.scrypt(
        password,
        salt=base64.b64decode(doc["kdf"]["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    box = nacl.secret.SecretBox(key)
    return bytes(
        box.decrypt(base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"]))
    )


def test_generate_key_pair_writes_cosign_format(tmp_path: Path) -> None:
    key_path, pub_path = generate_key_pair(tmp_path / "cosign", b"pw")
    assert (key_path, pub_path) == (tmp_path / "cosign.key", tmp_path / "cosign.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    text = key_path.read_text()
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    doc = _cosign_doc(key_path)
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    der = _independent_decrypt(key_path, b"pw")
    private = serialization.load_der_private_key(der, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"
    # PKCS#8 (what cosign's x509.ParsePKCS8PrivateKey wants), not SEC1.
    assert der == private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pub_path.read_bytes() == private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signer = load_signer(str(key_path), environ={"COSIGN_PASSWORD": "pw"})
    load_public_key(str(pub_path)).verify(PAYLOAD, signer.sign(PAYLOAD))
    with pytest.raises(KeyRefError, match="wrong password"):
        load_signer(str(key_path), environ={"COSIGN_PASSWORD": "PW"})


def test_generate_key_pair_salts_every_key(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "a", b"pw")
    generate_key_pair(tmp_path / "b", b"pw")
    a, b = _cosign_doc(tmp_path / "a.key"), _cosign_doc(tmp_path / "b.key")
    assert a["kdf"]["salt"] != b["kdf"]["salt"]
    assert a["cipher"]["nonce"] != b["cipher"]["nonce"]


@pytest.mark.parametrize("existing", ["cosign.key", "cosign.pub"])
def test_generate_key_pair_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(KeyRefError, match="already exists: not overwriting"):
        generate_key_pair(tmp_path / "cosign", b"pw")
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_generate_key_pair_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "cosign.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyRefError, match="already exists"):
        generate_key_pair(tmp_path / "cosign", b"pw")
    assert not (tmp_path / "elsewhere").exists()


def test_generate_key_pair_loses_the_race_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The .pub appears between the check and the write: the .key just written is taken back.
    real_link = os.link

    def link_then_race(src: Any, dst: Any) -> None:
        if str(dst).endswith(".key"):
            (tmp_path / "cosign.pub").write_text("someone else's")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_then_race)
    with pytest.raises(KeyRefError, match=r"cosign\.pub already exists"):
        generate_key_pair(tmp_path / "cosign", b"pw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.pub"]
    assert (tmp_path / "cosign.pub").read_text() == "someone else's"


def test_generate_key_pair_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyRefError, match="no such directory"):
        generate_key_pair(tmp_path / "nope" / "cosign", b"pw")


# --- imgctl generate-key-pair -----------------------------------------------------------------


def _cli(args: list[str], env: dict[str, str | None]) -> Any:
    from typer.testing import CliRunner

    from imgctl.cli._app import app

    return CliRunner().invoke(app, args, env=env, prog_name="imgctl")


def test_cli_generate_key_pair(tmp_path: Path) -> None:
    prefix = tmp_path / "release"
    result = _cli(
        ["generate-key-pair", "--output-key-prefix", str(prefix)], {"COSIGN_PASSWORD": "pw"}
    )
    assert result.exit_code == 0, result.output
    assert f"Private key written to {prefix}.key" in result.output
    assert f"Public key written to {prefix}.pub" in result.output
    signer = load_signer(f"{prefix}.key", environ={"COSIGN_PASSWORD": "pw"})
    load_public_key(f"{prefix}.pub").verify(PAYLOAD, signer.sign(PAYLOAD))
    again = _cli(
        ["generate-key-pair", "--output-key-prefix", str(prefix)], {"COSIGN_PASSWORD": "pw"}
    )
    assert again.exit_code == 2
    assert "already exists: not overwriting it" in again.output
    load_signer(f"{prefix}.key", environ={"COSIGN_PASSWORD": "pw"})


def test_cli_generate_key_pair_json(tmp_path: Path) -> None:
    prefix = tmp_path / "cosign"
    result = _cli(
        ["generate-key-pair", "--output-key-prefix", str(prefix), "-o", "json"],
        {"COSIGN_PASSWORD": ""},
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["privateKey"] == f"{prefix}.key"
    assert doc["publicKey"] == f"{prefix}.pub"
    assert doc["kms"] is None
    assert doc["keyId"] == load_public_key(f"{prefix}.pub").key_id
    load_signer(f"{prefix}.key", environ={"COSIGN_PASSWORD": ""})


def test_cli_generate_key_pair_without_password_or_terminal(tmp_path: Path) -> None:
    # CliRunner's stdin is not a terminal: no prompt, an error naming the variable.
    result = _cli(
        ["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")],
        {"COSIGN_PASSWORD": None},
    )
    assert result.exit_code == 2
    assert "set COSIGN_PASSWORD" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_key_pair_unsupported_kms(tmp_path: Path) -> None:
    result = _cli(
        [
            "generate-key-pair",
            "--kms",
            "hashivault://release",
            "--output-key-prefix",
            str(tmp_path / "k"),
        ],
        {"COSIGN_PASSWORD": None},
    )
    assert result.exit_code == 2
    assert "hashivault key references (HashiCorp Vault transit) are not supported yet" in (
        result.output
    )
    assert list(tmp_path.iterdir()) == []
