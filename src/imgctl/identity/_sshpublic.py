"""SSH public keys: the wire blob, ``authorized_keys`` lines, fingerprints, signature checks.

The parsing half of INTEROP section 1: what the issuer reads from its configured keys, what a
``.pub`` file beside a private key says, and the check of a raw signature blob against a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from imgctl.errors import IdentityError
from imgctl.identity._agent import WireError, WireReader

__all__ = [
    "ECDSA_CURVES",
    "KEY_TYPE_RE",
    "SUPPORTED_KEY_TYPES",
    "blob_key_type",
    "fingerprint",
    "parse_authorized_key",
    "verify_ssh_signature",
]

SUPPORTED_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    }
)
"""Key types imgctl signs and verifies with (those whose signatures Dex's connector accepts)."""

# OpenSSH refuses smaller RSA keys (RequiredRSASize) and larger moduli than this.
_RSA_MIN_BITS = 1024
_RSA_MAX_BITS = 16384

ECDSA_CURVES: dict[str, tuple[str, type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "ecdsa-sha2-nistp256": ("nistp256", ec.SECP256R1, hashes.SHA256),
    "ecdsa-sha2-nistp384": ("nistp384", ec.SECP384R1, hashes.SHA384),
    "ecdsa-sha2-nistp521": ("nistp521", ec.SECP521R1, hashes.SHA512),
}

KEY_TYPE_RE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@.+_-]+")

_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def fingerprint(public_blob: bytes) -> str:
    """The SHA-256 fingerprint of a public key, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(public_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def blob_key_type(blob: bytes) -> str:
    """The key type a wire blob starts with; WireError when the blob is malformed."""
    try:
        return WireReader(blob).string().decode("ascii")
    except UnicodeDecodeError:
        raise WireError("key type is not ASCII") from None


def _load_public_key(blob: bytes) -> tuple[str, _PublicKey | None]:
    """Parse a public key blob; the key is None for types imgctl does not verify.

    Raises WireError (a ValueError) when the blob is malformed for its type.
    """
    wire = WireReader(blob)
    try:
        key_type = wire.string().decode("ascii")
    except UnicodeDecodeError:
        raise WireError("key type is not ASCII") from None
    if key_type == "ssh-ed25519":
        raw = wire.string()
        wire.finish()
        if len(raw) != 32:
            raise WireError("an ed25519 public key is 32 bytes")
        return key_type, ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if key_type in ECDSA_CURVES:
        curve_name, curve, _ = ECDSA_CURVES[key_type]
        if wire.string() != curve_name.encode("ascii"):
            raise WireError(f"curve name does not match {key_type}")
        point = wire.string()
        wire.finish()
        try:
            return key_type, ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
        except ValueError:
            raise WireError("not a point on the curve") from None
    if key_type == "ssh-rsa":
        exponent = wire.mpint()
        modulus = wire.mpint()
        wire.finish()
        if exponent < 3 or exponent % 2 == 0 or modulus <= 0:
            raise WireError("invalid RSA exponent or modulus")
        if not _RSA_MIN_BITS <= modulus.bit_length() <= _RSA_MAX_BITS:
            raise WireError(
                f"RSA modulus must be {_RSA_MIN_BITS} to {_RSA_MAX_BITS} bits, "
                f"not {modulus.bit_length()}"
            )
        try:
            return key_type, rsa.RSAPublicNumbers(exponent, modulus).public_key()
        except ValueError:
            raise WireError("invalid RSA public key") from None
    return key_type, None


def parse_authorized_key(line: str) -> tuple[str, bytes, str]:
    """Parse ``TYPE BASE64 [COMMENT]`` into (key type, wire blob, comment).

    Lines with ``authorized_keys`` options are refused: nothing here could enforce them.
    Key types imgctl cannot verify are returned as parsed (``verify_ssh_signature`` then
    says False); check ``SUPPORTED_KEY_TYPES`` to refuse them up front.
    """
    text = line.strip()
    if not text:
        raise IdentityError("empty SSH public key line")
    if text.startswith("#"):
        raise IdentityError("the SSH public key line is a comment, not a key")
    if text.startswith("-----BEGIN"):
        raise IdentityError(
            "this is a private key or certificate in PEM form, not an SSH public key line",
            hint="use the .pub line, e.g. from `ssh-keygen -y -f KEY`",
        )
    fields = text.split(None, 2)
    if not KEY_TYPE_RE.fullmatch(fields[0]):
        later = [f for f in text.split()[1:] if KEY_TYPE_RE.fullmatch(f)]
        if later:
            raise IdentityError(
                f"the {later[0]} key line starts with authorized_keys options",
                hint="remove the options: imgctl's issuer cannot enforce them",
            )
        raise IdentityError(
            "the SSH public key line does not start with a key type "
            "(ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa...)"
        )
    key_type = fields[0]
    if len(fields) < 2:
        raise IdentityError(f"the {key_type} key line has no key data after the type")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise IdentityError(f"the {key_type} key data is not valid base64") from None
    try:
        embedded, _ = _load_public_key(blob)
    except WireError as exc:
        raise IdentityError(f"the {key_type} key data is malformed: {exc}") from None
    if embedded != key_type:
        shown = embedded if KEY_TYPE_RE.fullmatch(embedded) else "different"
        raise IdentityError(f"the key line says {key_type} but its data is a {shown} key")
    comment = fields[2].strip() if len(fields) > 2 else ""
    return key_type, blob, comment


def verify_ssh_signature(public_key: str | bytes, signing_input: bytes, signature: bytes) -> bool:
    """True when ``signature`` (a raw blob, as in the JWT) is ``public_key``'s over the input.

    ``public_key`` is an ``authorized_keys`` line or a wire blob. Never raises: a bad key,
    bad signature or unsupported key type is False. Callers should still validate their
    configured keys with ``parse_authorized_key`` so a typo is an error, not a silent False.
    """
    try:
        blob = parse_authorized_key(public_key)[1] if isinstance(public_key, str) else public_key
        key_type, key = _load_public_key(bytes(blob))
        if isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != 64:
                return False
            key.verify(signature, signing_input)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            wire = WireReader(signature)
            r, s = wire.mpint(), wire.mpint()
            wire.finish()
            if r <= 0 or s <= 0:
                return False
            hash_type = ECDSA_CURVES[key_type][2]
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_type()))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            # ssh-rsa means SHA-1: the connector verifies with format = key type.
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
            return True
    except (IdentityError, InvalidSignature, ValueError, OverflowError, UnsupportedAlgorithm):
        return False
    return False
