"""Attestations: in-toto statements in DSSE envelopes, stored cosign-style under ``.att``.

A promotion attestation is an in-toto Statement v1 about the promoted digest with a SLSA v1.0
provenance predicate (``promotion_statement``; built and validated with in-toto-attestation's
protobuf types), wrapped in a DSSE envelope (securesystemslib's ``dsse.Envelope``: its PAE, its
signing and verification, through adapters around imgctl's ``Signer`` and ``PublicKey``) and
appended as a layer of media type ``application/vnd.dsse.envelope.v1+json`` to the
``sha256-<hex>.att`` manifest (cosign's specs/ATTESTATION_SPEC.md), the layer annotated with
``predicateType`` (kpromo's ``https://k8s.io/promo-tools/promotion/v1`` by default) so promoter
attestations stay apart from build-time ones. The append, read-back and retry are ``_attach``'s,
shared with signatures.

Reading (``verify_envelope``, ``list_attestations``) is bounded and strict: envelope and
statement are parsed with ``_json``'s duplicate-refusing reader, the payload type must be
in-toto's, one signature must verify with a policy key (or, keyless, a Fulcio certificate in
the layer's annotations whose Rekor entry is a hashedrekord over the envelope's PAE, as imgctl's
keyless signer writes it), and a subject must carry the image's digest. Statements ``v1`` and
``v0.1`` (what older build systems attach) are both read. Layouts: docs/signing.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from imgctl.errors import InvalidManifestError, NotFoundError, SignatureError
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor
from imgctl.oci.reference import Reference
from imgctl.remote._client import RegistryClient
from imgctl.trust._attach import (
    MAX_ANNOTATION_BYTES,
    MAX_ATTACHMENT_LAYERS,
    AttachedManifest,
    append_layer,
    fetch_attachment_manifest,
    fetch_for_append,
    read_layer,
    size_text,
)
from imgctl.trust._cosign import SIGNATURE_ANNOTATION, TrustPolicy
from imgctl.trust._json import Malformed, b64decode, exact_object, go_json, strict_json
from imgctl.trust._keyless import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    certificate_identity,
    check_keyless,
)
from imgctl.trust._keys import PublicKey, Signer

__all__ = [
    "DSSE_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "PROMOTION_PREDICATE_TYPE",
    "SLSA_PROVENANCE_V1",
    "AttestOutcome",
    "AttestationCheck",
    "PromotionFacts",
    "attest_image",
    "list_attestations",
    "promotion_statement",
    "verify_envelope",
]

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The layer annotation kpromo gives its promotion attestations (the seeds' kpromo document).
PROMOTION_PREDICATE_TYPE = "https://k8s.io/promo-tools/promotion/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# What build systems attached before Statement v1 (SLSA 0.2 provenance, older cosign).
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
# The SLSA buildType of imgctl's promotions: what externalParameters/internalParameters hold
# is documented in docs/signing.md, "Attestations". A URN, as imgctl has no domain of its own.
PROMOTION_BUILD_TYPE = "urn:imgctl:promotion:v1"
# The layer annotation naming the predicate (cosign's, kpromo's).
PREDICATE_TYPE_ANNOTATION = "predicateType"
# Artifact types of referrers that hold DSSE envelopes (cosign's OCI 1.1 mode, oras, ...).
ATTESTATION_ARTIFACT_TYPES = frozenset({DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE})
# Sigstore bundles (``application/vnd.dev.sigstore.bundle.v0.3+json`` and the older
# ``...bundle+json;version=0.x``): what cosign's new bundle format and kpromo attach as referrers,
# the predicate type in the manifest's annotation.
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"

# Build-time provenance with many resolved dependencies runs to hundreds of KiB; an SBOM
# attestation to a few MiB. Larger is refused, unread.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
# DSSE allows several signatures; real envelopes have one.
MAX_ENVELOPE_SIGNATURES = 16
# How many attestation referrers of one digest are read.
MAX_ATTESTATION_REFERRERS = 100

_NO_KEY_REASON = "not verified: no key given"


@dataclass(frozen=True, slots=True)
class PromotionFacts:
    """What a promotion attestation records about one promoted digest."""

    source: Reference  # with digest
    destination: Reference  # with digest (and the tag written, if any)
    builder: str  # who promoted: the signer's identity (key id, server id, cip)
    started: datetime
    finished: datetime
    requested_by: str | None = None  # the caller of a server promotion
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttestOutcome:
    """What ``attest_image`` did."""

    image: Reference  # with digest
    attestation: Reference  # the sha256-<hex>.att tag
    status: Literal["attested", "already-attested"]
    predicate_type: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "image": str(self.image),
            "digest": str(self.image.digest) if self.image.digest else None,
            "attestation": str(self.attestation),
            "status": self.status,
            "predicateType": self.predicate_type,
        }


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    """The verdict on one attestation layer."""

    layer: Digest
    predicate_type: str | None  # the layer's annotation, else the statement's
    ok: bool
    reason: str  # "verified with key X" / "statement is for sha256:..." / "envelope tampered" ...
    signer: str | None = None
    statement: Mapping[str, Any] | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready verdict (the statement included)."""
        return {
            "layer": str(self.layer),
            "predicateType": self.predicate_type,
            "verified": self.ok,
            "reason": self.reason,
            "signer": self.signer,
            "statement": dict(self.statement) if self.statement is not None else None,
        }


# ----------------------------------------------------------------------------- statement


def _timestamp(when: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    # A naive datetime is taken as UTC (protobuf would too, silently).
    stamp = Timestamp()
    stamp.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    return stamp


def _location(ref: Reference) -> dict[str, str]:
    out = {"registry": ref.registry, "repository": ref.repository}
    if ref.tag is not None:
        out["tag"] = ref.tag
    return out


def promotion_statement(facts: PromotionFacts) -> dict[str, Any]:
    """An in-toto Statement v1 about ``facts.destination``'s digest with a SLSA v1.0 predicate."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    digest = facts.destination.digest or facts.source.digest
    if digest is None:
        raise ValueError("promotion_statement needs a destination (or source) with a digest")
    if digest.algorithm != "sha256":
        raise ValueError(f"promotion_statement: {digest.algorithm} digests are not supported")
    if facts.source.digest is not None and facts.source.digest != digest:
        raise ValueError("promotion_statement: source and destination digests differ")

    provenance = provenance_pb2.Provenance()
    build = provenance.build_definition
    build.build_type = PROMOTION_BUILD_TYPE
    build.external_parameters.update(
        {
            "source": _location(facts.source),
            "destination": _location(facts.destination),
            "digest": str(digest),
        }
    )
    internal = {
        key: value
        for key, value in (("requestId", facts.request_id), ("requestedBy", facts.requested_by))
        if value is not None
    }
    if internal:
        build.internal_parameters.update(internal)
    run = provenance.run_details
    run.builder.id = facts.builder
    if facts.request_id is not None:
        run.metadata.invocation_id = facts.request_id
    run.metadata.started_on.CopyFrom(_timestamp(facts.started))
    run.metadata.finished_on.CopyFrom(_timestamp(facts.finished))

    subject = ResourceDescriptor(name=facts.destination.name, digest={"sha256": digest.hex})
    predicate = json_format.MessageToDict(provenance)
    statement = Statement(
        subjects=[subject.pb], predicate_type=SLSA_PROVENANCE_V1, predicate=predicate
    )
    statement.validate()
    document: dict[str, Any] = json_format.MessageToDict(statement.pb)
    # The same predicate, in the provenance message's field order (a Struct keeps none).
    document["predicate"] = predicate
    return document


# ----------------------------------------------------------------------------- DSSE adapters


def _sslib_signature(keyid: str, signature: bytes) -> Any:
    from securesystemslib.signer import Signature

    return Signature(keyid=keyid, sig=signature.hex())


def _key_adapter(key: PublicKey, keyid: str) -> Any:
    """A securesystemslib ``Key`` that verifies with imgctl's ``PublicKey`` (cosign's schemes)."""
    from securesystemslib.exceptions import UnverifiedSignatureError
    from securesystemslib.signer import Key
    from securesystemslib.signer import Signature as SslibSignature

    class _ImgctlKey(Key):
        def __init__(self) -> None:
            super().__init__(keyid, "imgctl", key.algorithm, {"public": key.pem().decode()})

        @classmethod
        def from_dict(cls, keyid: str, key_dict: dict[str, Any]) -> Key:
            raise NotImplementedError("an adapter, never read from a dict")

        def to_dict(self) -> dict[str, Any]:
            return {"keytype": self.keytype, "scheme": self.scheme, "keyval": self.keyval}

        def verify_signature(self, signature: SslibSignature, data: bytes) -> None:
            try:
                key.verify(data, bytes.fromhex(signature.signature))
            except (SignatureError, ValueError) as exc:
                raise UnverifiedSignatureError(str(exc)) from None

    return _ImgctlKey()


def _signer_adapter(signer: Signer, public: PublicKey) -> Any:
    """A securesystemslib ``Signer`` over imgctl's (file, KMS or keyless) ``Signer``."""
    from securesystemslib.signer import Key, SecretsHandler, Signature
    from securesystemslib.signer import Signer as SslibSigner

    class _ImgctlSigner(SslibSigner):
        # cosign (sigstore's dsse wrapper) writes an empty keyid; so does imgctl.
        @property
        def public_key(self) -> Key:
            return _key_adapter(public, "")  # type: ignore[no-any-return]

        @classmethod
        def from_priv_key_uri(
            cls,
            priv_key_uri: str,
            public_key: Key,
            secrets_handler: SecretsHandler | None = None,
        ) -> SslibSigner:
            raise NotImplementedError("an adapter, never made from a URI")

        def sign(self, payload: bytes) -> Signature:
            return _sslib_signature("", signer.sign(payload))  # type: ignore[no-any-return]

    return _ImgctlSigner()


def _pae(payload_type: str, payload: bytes) -> bytes:
    from securesystemslib.dsse import Envelope

    return Envelope(payload, payload_type, {}).pae()


def sign_envelope(statement_bytes: bytes, signer: Signer, public: PublicKey) -> bytes:
    """A DSSE envelope over ``statement_bytes`` signed by ``signer`` (blocking: it signs)."""
    from securesystemslib.dsse import Envelope

    envelope = Envelope(statement_bytes, IN_TOTO_PAYLOAD_TYPE, {})
    envelope.sign(_signer_adapter(signer, public))
    doc = envelope.to_dict()
    # cosign's field order (go-securesystemslib's Envelope struct); readers do not care.
    return go_json({key: doc[key] for key in ("payloadType", "payload", "signatures")})


# ----------------------------------------------------------------------------- read


@dataclass(frozen=True, slots=True)
class _Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)


def _parse_envelope(data: bytes) -> _Envelope:
    doc = exact_object(
        strict_json(data, "envelope"),
        {"payloadType": str, "payload": str, "signatures": list},
        "envelope",
    )
    signatures = doc["signatures"]
    if not signatures:
        raise Malformed("envelope has no signatures")
    if len(signatures) > MAX_ENVELOPE_SIGNATURES:
        raise Malformed(f"envelope has {len(signatures)} signatures")
    parsed: list[tuple[str, bytes]] = []
    for index, item in enumerate(signatures):
        where = f"envelope.signatures[{index}]"
        if not isinstance(item, dict):
            raise Malformed(f"{where} is not a JSON object")
        # keyid is optional in DSSE; cosign writes it empty.
        fields = {"sig": str, "keyid": str} if "keyid" in item else {"sig": str}
        exact_object(item, fields, where)
        parsed.append((item.get("keyid", ""), b64decode(item["sig"], f"{where}.sig")))
    return _Envelope(
        payload_type=doc["payloadType"],
        payload=b64decode(doc["payload"], "envelope.payload"),
        signatures=tuple(parsed),
    )


def _parse_statement(payload: bytes) -> dict[str, Any]:
    """The statement, strictly: ``_type`` v1 (validated by in-toto-attestation) or v0.1."""
    doc = strict_json(payload, "statement")
    if not isinstance(doc, dict):
        raise Malformed("statement is not a JSON object")
    kind = doc.get("_type")
    if kind == STATEMENT_V1:
        from google.protobuf import json_format
        from in_toto_attestation.v1 import statement_pb2
        from in_toto_attestation.v1.statement import Statement

        try:
            message = json_format.ParseDict(doc, statement_pb2.Statement())
            Statement.copy_from_pb(message).validate()
        except (json_format.ParseError, ValueError) as exc:
            raise Malformed(f"statement: {str(exc)[:300]}") from None
    elif kind == STATEMENT_V01:
        if not isinstance(doc.get("predicateType"), str) or not doc["predicateType"]:
            raise Malformed("statement has no predicateType")
    else:
        raise Malformed(f"statement _type is {str(kind)[:200]!r}, not {STATEMENT_V1!r}")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise Malformed("statement has no subject")
    for index, subject in enumerate(subjects):
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digests, dict) or not all(
            isinstance(value, str) for value in digests.values()
        ):
            raise Malformed(f"statement subject[{index}] has no digest")
    return doc


def _subject_digests(statement: Mapping[str, Any]) -> list[str]:
    """The sha256 digests the statement's subjects name, as ``sha256:<hex>``."""
    out = []
    for subject in statement.get("subject") or []:
        value = (subject.get("digest") or {}).get("sha256") if isinstance(subject, dict) else None
        if isinstance(value, str):
            out.append(f"sha256:{value.lower()}")
    return out


def _names_subject(statement: Mapping[str, Any], digest: Digest, name: str | None) -> bool:
    """Whether a subject of ``statement`` is ``digest`` (and named ``name``, when given)."""
    for subject in statement.get("subject") or []:
        if not isinstance(subject, dict):
            continue
        value = (subject.get("digest") or {}).get(digest.algorithm)
        if not isinstance(value, str) or value.lower() != digest.hex:
            continue
        if name is None or subject.get("name") == name:
            return True
    return False


class _Refused(Exception):
    """The envelope's signature is not accepted; the message is the reason."""


def _check_envelope_signature(
    envelope: _Envelope, annotations: Mapping[str, str], policy: TrustPolicy
) -> tuple[str, str]:
    """(signer, reason) for an envelope one of the policy's keys or identities signed."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    for keyid, signature in envelope.signatures:
        # One signature at a time: securesystemslib keys signatures by keyid, and cosign's are
        # all empty. The key adapter takes the signature's keyid, an unauthenticated hint.
        single = Envelope(
            envelope.payload, envelope.payload_type, {keyid: _sslib_signature(keyid, signature)}
        )
        for key in policy.keys:
            try:
                single.verify([_key_adapter(key, keyid)], 1)
            except VerificationError:
                continue
            return key.ref, f"verified with key {key.ref}"
    has_certificate = CERTIFICATE_ANNOTATION in annotations
    keyless_reasons: list[str] = []
    if policy.keyless and has_certificate:
        pae = _pae(envelope.payload_type, envelope.payload)
        for wanted in policy.keyless:
            for _keyid, signature in envelope.signatures:
                why = check_keyless(
                    pae,
                    signature,
                    annotations,
                    identity=wanted.identity,
                    issuer=wanted.issuer,
                    fulcio_roots=wanted.fulcio_roots,
                    rekor_keys=wanted.rekor_keys,
                    dsse_payload=envelope.payload,
                )
                if why is None:
                    return (
                        wanted.identity,
                        f"verified keyless: {wanted.identity} ({wanted.issuer})",
                    )
                keyless_reasons.append(why)
    if keyless_reasons:
        reasons = "; ".join(dict.fromkeys(keyless_reasons))
        raise _Refused(f"signed by another key; keyless: {reasons}" if policy.keys else reasons)
    if policy.keyless and not policy.keys:
        raise _Refused(f"not a keyless attestation (no {CERTIFICATE_ANNOTATION})")
    signed_by = certificate_identity(annotations) if has_certificate else None
    if signed_by:
        raise _Refused(f"signed by another key (a certificate for {signed_by})")
    key_refs = ", ".join(key.ref for key in policy.keys)
    raise _Refused(
        f"the envelope's signature does not verify with {key_refs} "
        "(signed by another key, or the envelope was changed)"
    )


def verify_envelope(
    envelope: bytes,
    annotations: Mapping[str, str],
    image: Reference,
    policy: TrustPolicy,
) -> AttestationCheck:
    """Judge one ``.att`` layer (a DSSE envelope) for ``image`` (with digest); offline.

    A policy with neither keys nor keyless identities judges everything else and reports
    "not verified: no key given".
    """
    digest = image.digest
    if digest is None:
        raise ValueError("verify_envelope needs an image reference with a digest")
    layer = Digest.of(envelope)
    annotated = annotations.get(PREDICATE_TYPE_ANNOTATION)
    predicate_type = annotated[:1000] if annotated else None

    def refused(reason: str, statement: Mapping[str, Any] | None = None) -> AttestationCheck:
        kind = predicate_type
        if kind is None and statement is not None:
            stated = statement.get("predicateType")
            kind = stated[:1000] if isinstance(stated, str) else None
        return AttestationCheck(layer, kind, False, reason, statement=statement)

    if len(envelope) > MAX_ENVELOPE_BYTES:
        return refused(
            f"envelope is {len(envelope)} bytes; refusing more than {size_text(MAX_ENVELOPE_BYTES)}"
        )
    for key, value in annotations.items():
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ANNOTATION_BYTES:
            return refused(
                f"annotation {key[:100]} is {size} bytes; refusing more than "
                f"{size_text(MAX_ANNOTATION_BYTES)}"
            )
    try:
        parsed = _parse_envelope(envelope)
    except Malformed as exc:
        return refused(f"malformed {exc}")
    if parsed.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return refused(
            f"payloadType is {parsed.payload_type[:200]!r}, not {IN_TOTO_PAYLOAD_TYPE!r}"
        )
    try:
        statement = _parse_statement(parsed.payload)
    except Malformed as exc:
        return refused(f"malformed {exc}")

    def for_other_digest() -> AttestationCheck | None:
        if _names_subject(statement, digest, None):
            return None
        named = _subject_digests(statement)
        return refused(
            f"statement is for {', '.join(named[:3])}" if named else "statement names no sha256",
            statement,
        )

    if not policy.keys and not policy.keyless:
        return for_other_digest() or refused(_NO_KEY_REASON, statement)
    try:
        signer, verified = _check_envelope_signature(parsed, annotations, policy)
    except _Refused as exc:
        return refused(str(exc), statement)
    other = for_other_digest()
    if other is not None:
        return other
    check = refused(verified, statement)
    return replace(check, ok=True, signer=signer)


def _is_bundle(media_type: str | None) -> bool:
    return bool(media_type) and str(media_type).startswith(SIGSTORE_BUNDLE_PREFIX)


def _pem(der_b64: Any, where: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not isinstance(der_b64, str):
        raise Malformed(f"{where} has no rawBytes")
    try:
        certificate = x509.load_der_x509_certificate(b64decode(der_b64, where))
    except ValueError:
        raise Malformed(f"{where} is not a DER certificate") from None
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _whole_number(value: Any, where: str) -> int:
    """A protobuf JSON int64: a decimal string (or a plain number)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Malformed(f"{where} is not a number")
    if isinstance(value, str) and not value.isdigit():
        raise Malformed(f"{where} is not a number")
    return int(value)


def bundle_layer(data: bytes) -> tuple[bytes, dict[str, str]]:
    """A sigstore bundle's DSSE envelope, and its certificate and log entry as annotations.

    The annotations are cosign's keyless layer annotations, which ``_keyless`` checks; Malformed
    if the bundle holds no envelope.
    """
    doc = strict_json(data, "bundle")
    if not isinstance(doc, dict):
        raise Malformed("bundle is not a JSON object")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise Malformed("bundle holds no DSSE envelope (a message signature, not an attestation)")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        raise Malformed("bundle's envelope has no signatures")
    entries = [
        {"keyid": item.get("keyid", ""), "sig": item.get("sig")} if isinstance(item, dict) else item
        for item in signatures[: MAX_ENVELOPE_SIGNATURES + 1]
    ]
    rebuilt = go_json(
        {
            "payloadType": envelope.get("payloadType"),
            "payload": envelope.get("payload"),
            "signatures": entries,
        }
    )
    annotations: dict[str, str] = {}
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Malformed("bundle has no verificationMaterial")
    certificate = material.get("certificate")
    chain = material.get("x509CertificateChain")
    if isinstance(certificate, dict):
        annotations[CERTIFICATE_ANNOTATION] = _pem(certificate.get("rawBytes"), "certificate")
    elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        certificates = chain["certificates"][:10]
        if certificates:
            pems = [
                _pem(c.get("rawBytes") if isinstance(c, dict) else None, "chain certificate")
                for c in certificates
            ]
            annotations[CERTIFICATE_ANNOTATION] = pems[0]
            if len(pems) > 1:
                annotations[CHAIN_ANNOTATION] = "".join(pems[1:])
    for entry in material.get("tlogEntries") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("inclusionPromise"), dict):
            continue
        log_id = entry.get("logId")
        key_id = log_id.get("keyId") if isinstance(log_id, dict) else None
        promise = entry["inclusionPromise"].get("signedEntryTimestamp")
        body = entry.get("canonicalizedBody")
        if not isinstance(key_id, str) or not isinstance(promise, str) or not isinstance(body, str):
            raise Malformed("bundle's log entry lacks logId, signedEntryTimestamp or body")
        # The old cosign bundle annotation: what the log's SET signs, as Rekor v1 returned it.
        annotations[BUNDLE_ANNOTATION] = json.dumps(
            {
                "SignedEntryTimestamp": promise,
                "Payload": {
                    "body": body,
                    "integratedTime": _whole_number(entry.get("integratedTime"), "integratedTime"),
                    "logIndex": _whole_number(entry.get("logIndex"), "logIndex"),
                    "logID": b64decode(key_id, "logId.keyId").hex(),
                },
            }
        )
        break
    return rebuilt, annotations


def _judge_layer(
    descriptor: Descriptor,
    blob: bytes | None,
    image: Reference,
    policy: TrustPolicy,
    manifest_annotations: Mapping[str, str] | None = None,
) -> AttestationCheck:
    """Judge a layer of an attestation manifest and the blob fetched for it; offline.

    A layer is a DSSE envelope (cosign's ``.att``) or a sigstore bundle holding one (a
    referrer, its predicate type in ``manifest_annotations``).
    """
    bundled = _is_bundle(descriptor.media_type)
    annotated = descriptor.annotations.get(PREDICATE_TYPE_ANNOTATION)
    if bundled and manifest_annotations:
        annotated = manifest_annotations.get(BUNDLE_PREDICATE_TYPE_ANNOTATION) or annotated

    def refused(reason: str) -> AttestationCheck:
        return AttestationCheck(
            descriptor.digest, annotated[:1000] if annotated else None, False, reason
        )

    if descriptor.media_type != DSSE_MEDIA_TYPE and not bundled:
        return refused(f"not a DSSE envelope layer ({descriptor.media_type[:200]})")
    if descriptor.size > MAX_ENVELOPE_BYTES:
        return refused(
            f"envelope is {descriptor.size} bytes; refusing more than "
            f"{size_text(MAX_ENVELOPE_BYTES)}"
        )
    if blob is None:
        return refused("layer blob is missing from the registry")
    if len(blob) != descriptor.size or Digest.of(blob, descriptor.digest.algorithm) != (
        descriptor.digest
    ):
        return refused("layer blob does not match its digest")
    envelope, annotations = blob, dict(descriptor.annotations)
    if bundled:
        try:
            envelope, material = bundle_layer(blob)
        except Malformed as exc:
            return refused(f"malformed {exc}")
        annotations.update(material)
        if annotated:
            annotations[PREDICATE_TYPE_ANNOTATION] = annotated
    return replace(verify_envelope(envelope, annotations, image, policy), layer=descriptor.digest)


# ----------------------------------------------------------------------------- registry


def attestation_tag(digest: Digest) -> str:
    """The tag cosign keeps a digest's attestations under: ``sha256-<hex>.att``."""
    return f"{digest.tag_form}.att"


async def _layer_blob(
    client: RegistryClient, repository: Reference, desc: Descriptor
) -> bytes | None:
    if (desc.media_type != DSSE_MEDIA_TYPE and not _is_bundle(desc.media_type)) or (
        desc.size > MAX_ENVELOPE_BYTES
    ):
        return None
    return await read_layer(client, repository, desc)


async def _referrer_manifests(client: RegistryClient, subject: Reference) -> list[AttachedManifest]:
    """The attestation manifests stored as OCI 1.1 referrers of ``subject``."""
    try:
        found = await client.referrers(subject)
    except NotFoundError:
        return []
    except InvalidManifestError as exc:
        raise SignatureError(f"the referrers of {subject} cannot be read: {exc.message}") from None
    wanted = [
        d
        for d in found
        if d.artifact_type in ATTESTATION_ARTIFACT_TYPES or _is_bundle(d.artifact_type)
    ]
    manifests = []
    for desc in wanted[:MAX_ATTESTATION_REFERRERS]:
        manifest = await fetch_attachment_manifest(
            client, subject.with_digest(desc.digest), "attestation"
        )
        if manifest is not None:
            manifests.append(manifest)
    return manifests


async def list_attestations(
    client: RegistryClient,
    image: Reference,
    policy: TrustPolicy | None = None,
) -> list[AttestationCheck]:
    """Every attestation of ``image`` (with digest), from ``.att`` and referrers, judged by policy.

    Without a policy, layers are parsed and reported but none counts as verified.
    """
    digest = image.digest
    if digest is None:
        raise ValueError("list_attestations needs an image reference with a digest")
    judging = policy if policy is not None else TrustPolicy()
    manifests: list[AttachedManifest] = []
    tagged = await fetch_attachment_manifest(
        client, image.with_tag(attestation_tag(digest)), "attestation"
    )
    if tagged is not None:
        manifests.append(tagged)
    manifests += await _referrer_manifests(client, image.with_digest(digest))
    checks: list[AttestationCheck] = []
    seen: set[Digest] = set()
    for manifest in manifests:
        for desc in manifest.parsed.layers[:MAX_ATTACHMENT_LAYERS]:
            # The same envelope reached twice (tag and referrer) is one attestation.
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            blob = await _layer_blob(client, manifest.ref, desc)
            annotations = manifest.doc.get("annotations")
            checks.append(
                _judge_layer(
                    desc,
                    blob,
                    image,
                    judging,
                    annotations if isinstance(annotations, dict) else None,
                )
            )
    return checks


async def _already_attested(
    client: RegistryClient,
    manifest: AttachedManifest,
    digest: Digest,
    name: str | None,
    predicate_type: str,
    public: PublicKey,
) -> bool:
    """Whether ``manifest`` has a ``predicate_type`` attestation of ``digest`` signed by ``public``.

    ``name``, when given, must be the name of the subject that carries the digest.
    """
    policy = TrustPolicy(keys=(public,))
    image = manifest.ref.with_digest(digest)
    for desc in manifest.parsed.layers:
        if desc.media_type != DSSE_MEDIA_TYPE:
            continue
        if desc.annotations.get(PREDICATE_TYPE_ANNOTATION) != predicate_type:
            continue
        blob = await _layer_blob(client, manifest.ref, desc)
        check = _judge_layer(desc, blob, image, policy)
        if check.ok and check.statement and _names_subject(check.statement, digest, name):
            return True
    return False


def _statement_name(statement: Mapping[str, Any], digest: Digest) -> str | None:
    """The name the statement gives ``digest`` (the destination, in a promotion statement)."""
    for subject in statement.get("subject") or []:
        if isinstance(subject, dict):
            value = (subject.get("digest") or {}).get(digest.algorithm)
            if isinstance(value, str) and value.lower() == digest.hex:
                name = subject.get("name")
                return name if isinstance(name, str) and name else None
    return None


async def attest_image(
    client: RegistryClient,
    image: Reference,
    signer: Signer,
    statement: Mapping[str, Any],
    *,
    predicate_type: str = PROMOTION_PREDICATE_TYPE,
) -> AttestOutcome:
    """Sign ``statement`` into a DSSE envelope and append it to ``image``'s ``.att`` manifest.

    Idempotent by predicate type and destination: a layer with the same ``predicate_type``
    annotation whose statement names the same subject digest and destination is
    ``already-attested`` and nothing is written; other attestations already there are kept.
    Only a layer whose envelope the signer's key signed counts (a stray or forged layer does
    not stop a promotion from being attested).
    """
    digest = image.digest
    if digest is None:
        raise ValueError("attest_image needs an image reference with a digest")
    if not _names_subject(statement, digest, None):
        named = _subject_digests(statement)
        raise SignatureError(
            f"the statement to attest is for {', '.join(named[:3]) or 'no sha256 digest'}, "
            f"not {digest}",
            hint="build the statement for the digest being attested",
        )
    payload = go_json(dict(statement))
    try:
        _parse_statement(payload)
    except Malformed as exc:
        raise SignatureError(
            f"the statement to attest is not an in-toto statement: {exc}",
            hint="give an in-toto Statement v1 (_type, subject, predicateType, predicate)",
        ) from None
    if len(payload) > MAX_ENVELOPE_BYTES * 3 // 4 - 1024:
        raise SignatureError(
            f"the statement is {len(payload)} bytes; its envelope would exceed "
            f"{size_text(MAX_ENVELOPE_BYTES)}",
            hint="attest a smaller predicate",
        )
    name = _statement_name(statement, digest)
    att_ref = image.with_tag(attestation_tag(digest))
    public = await asyncio.to_thread(signer.public_key)

    def outcome(status: Literal["attested", "already-attested"]) -> AttestOutcome:
        return AttestOutcome(image.with_digest(digest), att_ref, status, predicate_type)

    async def present(manifest: AttachedManifest) -> bool:
        return await _already_attested(client, manifest, digest, name, predicate_type, public)

    existing = await fetch_for_append(client, att_ref, "attestation")
    if existing is not None and await present(existing):
        return outcome("already-attested")

    envelope = await asyncio.to_thread(sign_envelope, payload, signer, public)
    # A signer whose signature its own key does not verify must not write anything.
    check = verify_envelope(envelope, {}, image.with_digest(digest), TrustPolicy(keys=(public,)))
    if not check.ok:
        raise SignatureError(
            f"the attestation made with {signer.ref} does not verify: {check.reason}"
        )
    annotations = {PREDICATE_TYPE_ANNOTATION: predicate_type, SIGNATURE_ANNOTATION: ""}
    extra = getattr(signer, "layer_annotations", None)
    if callable(extra):
        signature = base64.b64decode(strict_json(envelope, "envelope")["signatures"][0]["sig"])
        annotations.update(extra(_pae(IN_TOTO_PAYLOAD_TYPE, payload), signature))
    layer: dict[str, Any] = {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": len(envelope),
        "digest": str(Digest.of(envelope)),
        "annotations": {key: annotations[key] for key in sorted(annotations)},
    }
    appended = await append_layer(
        client, att_ref, envelope, layer, existing=existing, present=present, kind="attestation"
    )
    return outcome("attested" if appended else "already-attested")
