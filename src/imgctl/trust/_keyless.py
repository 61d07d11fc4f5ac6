"""Keyless cosign signatures (a Fulcio certificate and a Rekor bundle), checked offline.

cosign's keyless layer carries three annotations beside the signature: the Fulcio leaf
certificate (PEM), its chain (PEM, intermediate then root) and the Rekor bundle: the log's
signed entry timestamp (SET) over the canonical JSON (RFC 8785) of ``{body, integratedTime,
logIndex, logID}``. ``check_keyless`` trusts none of it: the SET must verify with one of the
configured Rekor keys, the certificate must chain to the configured Fulcio roots at the time the
log integrated the entry, the log entry (hashedrekord or rekord) must name this signature, this
payload's hash and this certificate, the signature must verify with the certificate's key, and
the certificate's SAN and OIDC issuer must be the expected ones (sigstore's ``Identity``).

Not checked, as no offline trust root the user gives carries what they need: the certificate's
SCT (needs the CT log's key) and a Merkle inclusion proof (the old bundle has none; the SET is
the log's promise instead). ``sigstore``'s own ``Verifier`` requires both, which is why the
steps are assembled here from its parts and pyca/cryptography's path validation.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imgctl.errors import KeyRefError
from imgctl.trust._json import Malformed, b64decode, exact_object, strict_json

__all__ = [
    "BUNDLE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "certificate_identity",
    "check_keyless",
    "load_fulcio_roots",
    "load_rekor_keys",
    "trusted_root_material",
]

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

# A Rekor entry body holds a signature and a certificate: a few KiB. Bounded before decoding.
MAX_REKOR_BODY_BYTES = 64 * 1024
# Fulcio's chain is two certificates; a longer one is not Fulcio's.
MAX_CHAIN_CERTIFICATES = 10
_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


class _Refused(Exception):
    """One check failed; the message is the reason shown for the signature."""


def _b64(text: str, where: str) -> bytes:
    try:
        return b64decode(text, where)
    except Malformed as exc:
        raise _Refused(f"malformed {exc}") from None


def _object(data: bytes | str, fields: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return exact_object(strict_json(data, where), fields, where)
    except Malformed as exc:
        raise _Refused(f"malformed {exc}") from None


def _fields(value: Any, fields: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return exact_object(value, fields, where)
    except Malformed as exc:
        raise _Refused(f"malformed {exc}") from None


@functools.lru_cache(maxsize=32)
def load_fulcio_roots(pem: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM bundle of trusted Fulcio roots (intermediates may be in it)."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise KeyRefError(
            f"the Fulcio trusted root is not a PEM certificate bundle ({exc})",
            hint="give the Fulcio root (and intermediate) certificates as PEM",
        ) from None
    return certs


RekorKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@functools.lru_cache(maxsize=32)
def load_rekor_keys(pems: tuple[bytes, ...]) -> tuple[RekorKey, ...]:
    """The Rekor public keys of PEM SubjectPublicKeyInfo blocks (ECDSA, or Ed25519)."""
    keys: list[RekorKey] = []
    for pem in pems:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise KeyRefError(
                f"a Rekor public key is not a PEM public key ({exc})",
                hint="give the Rekor log's public key as PEM (rekor.pub)",
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise KeyRefError(
                "a Rekor public key is neither ECDSA nor Ed25519",
                hint="give the Rekor log's public key (rekor.pub)",
            )
        keys.append(key)
    return tuple(keys)


def _certificate(annotations: Mapping[str, str]) -> x509.Certificate:
    text = annotations.get(CERTIFICATE_ANNOTATION)
    if not text:
        raise _Refused(f"no certificate ({CERTIFICATE_ANNOTATION})")
    try:
        certs = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise _Refused("malformed certificate annotation: not a PEM certificate") from None
    if len(certs) != 1:
        raise _Refused(f"malformed certificate annotation: {len(certs)} certificates, not 1")
    return certs[0]


def _chain(annotations: Mapping[str, str]) -> list[x509.Certificate]:
    text = annotations.get(CHAIN_ANNOTATION)
    if not text:
        return []
    try:
        certs = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise _Refused("malformed chain annotation: not PEM certificates") from None
    if len(certs) > MAX_CHAIN_CERTIFICATES:
        raise _Refused(f"malformed chain annotation: {len(certs)} certificates")
    return certs


def _bundle(annotations: Mapping[str, str]) -> tuple[bytes, dict[str, Any]]:
    """The SET and the payload it signs, strictly parsed."""
    text = annotations.get(BUNDLE_ANNOTATION)
    if not text:
        raise _Refused(
            f"no Rekor bundle ({BUNDLE_ANNOTATION}): a keyless signature needs the log's "
            "signed entry timestamp"
        )
    doc = _object(text, {"SignedEntryTimestamp": str, "Payload": dict}, "Rekor bundle")
    payload = _fields(
        doc["Payload"],
        {"body": str, "integratedTime": int, "logIndex": int, "logID": str},
        "Rekor bundle Payload",
    )
    return _b64(doc["SignedEntryTimestamp"], "Rekor bundle SET"), payload


def _check_set(set_: bytes, payload: dict[str, Any], keys: tuple[RekorKey, ...]) -> None:
    import rfc8785

    try:
        canonical = rfc8785.dumps(payload)
    except rfc8785.CanonicalizationError as exc:
        raise _Refused(f"malformed Rekor bundle: {exc}") from None
    for key in keys:
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(set_, canonical, ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(set_, canonical)
        except (InvalidSignature, ValueError):
            continue
        return
    raise _Refused("the Rekor bundle is not signed by a trusted Rekor key")


def _check_chain(
    leaf: x509.Certificate,
    chain: list[x509.Certificate],
    roots: tuple[x509.Certificate, ...],
    when: datetime,
) -> None:
    from cryptography.x509 import ExtendedKeyUsage
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    if not roots:
        raise _Refused("no trusted Fulcio root to check the certificate against")
    # Fulcio certificates carry the code-signing EKU, not the client-auth one a client
    # verifier expects; sigstore relaxes only that check the same way.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, chain)
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise _Refused(
            f"the certificate does not chain to a trusted Fulcio root at "
            f"{when:%Y-%m-%dT%H:%M:%SZ} ({exc})"
        ) from None
    try:
        usage = leaf.extensions.get_extension_for_class(ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise _Refused("the certificate is not for code signing (no extended key usage)") from None
    if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise _Refused("the certificate is not for code signing")


def _verify_with_certificate(leaf: x509.Certificate, payload: bytes, signature: bytes) -> None:
    key = leaf.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise _Refused("the certificate's key type is not one cosign signs with")
    except (InvalidSignature, ValueError):
        raise _Refused("the signature does not verify with the certificate's key") from None


def _check_dsse_entry(
    spec: dict[str, Any], leaf: x509.Certificate, dsse_payload: bytes, signature: bytes
) -> None:
    """A dsse 0.0.1 entry names this envelope payload, and this signature by this certificate.

    The signature covers the envelope's PAE (payload type and payload), so the payload hash and
    the signature together bind the entry to the envelope.
    """
    payload_hash = spec.get("payloadHash")
    signatures = spec.get("signatures")
    if not isinstance(payload_hash, dict) or not isinstance(signatures, list):
        raise _Refused("malformed Rekor entry: no payloadHash or signatures")
    if payload_hash.get("algorithm") != "sha256" or not isinstance(payload_hash.get("value"), str):
        raise _Refused("the Rekor entry's payload hash is not sha256")
    if payload_hash["value"].lower() != hashlib.sha256(dsse_payload).hexdigest():
        raise _Refused("the Rekor entry is for another payload")
    for item in signatures[:MAX_CHAIN_CERTIFICATES]:
        if not isinstance(item, dict):
            continue
        content, verifier = item.get("signature"), item.get("verifier")
        if not isinstance(content, str) or not isinstance(verifier, str):
            continue
        if _b64(content, "Rekor entry signature") != signature:
            continue
        try:
            logged = x509.load_pem_x509_certificates(_b64(verifier, "Rekor entry verifier"))
        except ValueError:
            raise _Refused("the Rekor entry does not hold a certificate") from None
        if len(logged) != 1 or logged[0] != leaf:
            raise _Refused("the Rekor entry is for another certificate")
        return
    raise _Refused("the Rekor entry is for another signature")


def _check_entry(
    body_b64: str,
    leaf: x509.Certificate,
    payload: bytes,
    signature: bytes,
    dsse_payload: bytes | None = None,
) -> None:
    """The log entry names this signature, payload and certificate.

    A hashedrekord or rekord 0.0.1 entry; for a DSSE envelope (``payload`` its PAE,
    ``dsse_payload`` its payload) a dsse 0.0.1 entry too.
    """
    if len(body_b64) > MAX_REKOR_BODY_BYTES * 4 // 3 + 4:
        raise _Refused("malformed Rekor entry: body too large")
    body = _object(
        _b64(body_b64, "Rekor entry"), {"apiVersion": str, "kind": str, "spec": dict}, "Rekor entry"
    )
    kind, version = body["kind"], body["apiVersion"]
    spec = body["spec"]
    if not isinstance(spec, dict):
        raise _Refused("malformed Rekor entry: spec is not an object")
    if dsse_payload is not None and (kind, version) == ("dsse", "0.0.1"):
        _check_dsse_entry(spec, leaf, dsse_payload, signature)
        return
    if kind not in ("hashedrekord", "rekord") or version != "0.0.1":
        wanted = (
            "a hashedrekord 0.0.1 or dsse 0.0.1"
            if dsse_payload is not None
            else ("a hashedrekord 0.0.1")
        )
        raise _Refused(f"the Rekor entry is a {kind} {version}, not {wanted}")
    sig = spec.get("signature")
    data = spec.get("data")
    if not isinstance(sig, dict) or not isinstance(data, dict):
        raise _Refused("malformed Rekor entry: no signature or data")
    public_key = sig.get("publicKey")
    content = sig.get("content")
    if not isinstance(public_key, dict) or not isinstance(content, str):
        raise _Refused("malformed Rekor entry: no signature content or public key")
    if kind == "rekord" and sig.get("format") != "x509":
        raise _Refused("the Rekor entry's signature format is not x509")
    if _b64(content, "Rekor entry signature") != signature:
        raise _Refused("the Rekor entry is for another signature")
    key_text = public_key.get("content")
    if not isinstance(key_text, str):
        raise _Refused("malformed Rekor entry: no public key content")
    try:
        logged = x509.load_pem_x509_certificates(_b64(key_text, "Rekor entry public key"))
    except ValueError:
        raise _Refused("the Rekor entry does not hold a certificate") from None
    if len(logged) != 1 or logged[0] != leaf:
        raise _Refused("the Rekor entry is for another certificate")
    digest = data.get("hash")
    if not isinstance(digest, dict):
        raise _Refused("malformed Rekor entry: no data hash")
    if digest.get("algorithm") != "sha256" or not isinstance(digest.get("value"), str):
        raise _Refused("the Rekor entry's data hash is not sha256")
    if digest["value"].lower() != hashlib.sha256(payload).hexdigest():
        raise _Refused("the Rekor entry is for another payload")


def _check_identity(leaf: x509.Certificate, identity: str, issuer: str) -> None:
    from sigstore.errors import VerificationError
    from sigstore.verify.policy import Identity, OIDCIssuer, OIDCIssuerV2

    present = {ext.oid for ext in leaf.extensions}
    if _ISSUER_OID not in present and _ISSUER_V2_OID not in present:
        raise _Refused("the certificate names no OIDC issuer")
    checks: list[Any] = [Identity(identity=identity)]
    # Fulcio writes the issuer twice (the raw-bytes 1.1 and the DER UTF8String 1.8); each one
    # the certificate has must be the expected issuer.
    if _ISSUER_OID in present:
        checks.append(OIDCIssuer(issuer))
    if _ISSUER_V2_OID in present:
        checks.append(OIDCIssuerV2(issuer))
    for check in checks:
        try:
            check.verify(leaf)
        except (VerificationError, ValueError, x509.ExtensionNotFound) as exc:
            raise _Refused(f"certificate identity refused: {exc}") from None


def certificate_identity(annotations: Mapping[str, str]) -> str | None:
    """The SAN values of a layer's certificate, for messages; None without a readable one."""
    try:
        leaf = _certificate(annotations)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (_Refused, x509.ExtensionNotFound, ValueError):
        return None
    values = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
    values += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return ", ".join(values) or None


def check_keyless(
    payload: bytes,
    signature: bytes,
    annotations: Mapping[str, str],
    *,
    identity: str,
    issuer: str,
    fulcio_roots: bytes,
    rekor_keys: tuple[bytes, ...],
    dsse_payload: bytes | None = None,
) -> str | None:
    """None when the layer is a valid keyless signature by ``identity``; else why not.

    For a DSSE envelope ``payload`` is its PAE and ``dsse_payload`` the envelope's payload: the
    log entry may then also be a dsse 0.0.1 entry (what cosign attest logs).
    """
    roots = load_fulcio_roots(fulcio_roots) if fulcio_roots else ()
    keys = load_rekor_keys(rekor_keys)
    try:
        leaf = _certificate(annotations)
        chain = _chain(annotations)
        set_, entry = _bundle(annotations)
        if not keys:
            raise _Refused("no trusted Rekor key to check the bundle with")
        _check_set(set_, entry, keys)
        # The entry first: a SET for another entry says nothing about this signature's time.
        _check_entry(entry["body"], leaf, payload, signature, dsse_payload)
        try:
            when = datetime.fromtimestamp(entry["integratedTime"], UTC)
        except (OverflowError, OSError, ValueError):
            raise _Refused("malformed Rekor bundle: integratedTime out of range") from None
        _check_chain(leaf, chain, roots, when)
        _verify_with_certificate(leaf, payload, signature)
        _check_identity(leaf, identity, issuer)
    except _Refused as refused:
        return str(refused)
    return None


def trusted_root_material(data: bytes, where: str) -> tuple[bytes, tuple[bytes, ...]]:
    """The Fulcio certificates (one PEM bundle) and Rekor keys (PEM) of a trusted_root.json.

    The file is sigstore's TrustedRoot (protobuf-specs, JSON form): ``certificateAuthorities[]
    .certChain.certificates[].rawBytes`` (DER) and ``tlogs[].publicKey.rawBytes`` (DER SPKI).
    """
    try:
        doc = strict_json(data, where)
        if not isinstance(doc, dict):
            raise Malformed(f"{where} is not a JSON object")
        authorities = doc.get("certificateAuthorities") or []
        tlogs = doc.get("tlogs") or []
        if not isinstance(authorities, list) or not isinstance(tlogs, list):
            raise Malformed(f"{where}: certificateAuthorities and tlogs must be lists")
        pems: list[bytes] = []
        for authority in authorities:
            chain = authority.get("certChain") if isinstance(authority, dict) else None
            certs = chain.get("certificates") if isinstance(chain, dict) else None
            if not isinstance(certs, list):
                raise Malformed(f"{where}: a certificate authority has no certChain")
            for cert in certs:
                raw = cert.get("rawBytes") if isinstance(cert, dict) else None
                if not isinstance(raw, str):
                    raise Malformed(f"{where}: a certificate has no rawBytes")
                parsed = x509.load_der_x509_certificate(b64decode(raw, f"{where} certificate"))
                pems.append(parsed.public_bytes(serialization.Encoding.PEM))
        keys: list[bytes] = []
        for tlog in tlogs:
            public = tlog.get("publicKey") if isinstance(tlog, dict) else None
            raw = public.get("rawBytes") if isinstance(public, dict) else None
            if not isinstance(raw, str):
                raise Malformed(f"{where}: a transparency log has no publicKey.rawBytes")
            key = serialization.load_der_public_key(b64decode(raw, f"{where} Rekor key"))
            keys.append(
                key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
    except (Malformed, ValueError) as exc:
        raise KeyRefError(
            f"trusted root {where} cannot be read: {exc}",
            hint="give sigstore's trusted_root.json, or --certificate-chain and "
            "--rekor-public-key as PEM files",
        ) from None
    return b"".join(pems), tuple(keys)
