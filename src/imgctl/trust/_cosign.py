"""cosign simple signing: the payload, the ``sha256-<hex>.sig`` manifest, signing and verifying.

Layout (cosign's specs/SIGNATURE_SPEC.md; docs/signing.md): the signatures of ``sha256:<hex>``
are the layers of one OCI image manifest tagged ``sha256-<hex>.sig`` in the image's repository.
Each layer's blob is a simple-signing payload naming the repository and the digest; its
``dev.cosignproject.cosign/signature`` annotation is the base64 signature over those bytes.
Keyless layers add a Fulcio certificate, its chain and a Rekor bundle (``_keyless``).

Signing appends a layer and pushes the manifest again, read back and retried as ``_attach``
describes (the same machinery attestations use).

Verification is split: ``verify_signature_layer`` and ``judge_layer`` are pure and offline (a
payload, its descriptor and annotations in, a verdict out); ``verify_image`` fetches, bounded.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from imgctl.errors import (
    InvalidDigestError,
    InvalidManifestError,
    InvalidReferenceError,
    NotFoundError,
    SignatureError,
)
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Manifest
from imgctl.oci.reference import DEFAULT_REGISTRY, Reference
from imgctl.remote._client import RegistryClient
from imgctl.trust._attach import (
    MAX_ANNOTATION_BYTES,
    MAX_ATTACHMENT_LAYERS,
    AttachedManifest,
    append_layer,
    fetch_attachment_manifest,
    fetch_for_append,
    parse_attachment_manifest,
    read_layer,
    size_text,
)
from imgctl.trust._json import Malformed, b64decode, exact_object, go_json, strict_json
from imgctl.trust._keyless import CERTIFICATE_ANNOTATION, certificate_identity, check_keyless
from imgctl.trust._keys import PublicKey, Signer

__all__ = [
    "SIGNATURE_MEDIA_TYPE",
    "KeylessIdentity",
    "SignOutcome",
    "SignatureCheck",
    "TrustPolicy",
    "VerificationReport",
    "sign_image",
    "simple_signing_payload",
    "verify_image",
    "verify_signature_layer",
]

SIGNATURE_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
# cosign's OCI 1.1 mode pushes each signature as a referrer of this artifact type.
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_TYPE = "cosign container image signature"

# A payload is a few hundred bytes; user annotations (-a) make it larger, not 1 MiB larger.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_SIGNATURE_LAYERS = MAX_ATTACHMENT_LAYERS


@dataclass(frozen=True, slots=True)
class KeylessIdentity:
    """A Fulcio certificate identity to accept, checked offline against a trusted root."""

    identity: str  # the certificate's SAN, exactly (cosign --certificate-identity)
    issuer: str  # the OIDC issuer extension (cosign --certificate-oidc-issuer)
    # PEM bundles: Fulcio root (+ intermediates), and the Rekor public key(s) for the SET.
    fulcio_roots: bytes = b""
    rekor_keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """What a signature must satisfy: one of ``keys`` or ``keyless`` signed it, and its identity.

    ``identities`` are the docker-references a payload may name (repositories, tags ignored);
    empty means the image's own repository. ``any_identity`` skips that check (cosign's default).
    """

    keys: tuple[PublicKey, ...] = ()
    keyless: tuple[KeylessIdentity, ...] = ()
    identities: tuple[str, ...] = ()
    any_identity: bool = False


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The verdict on one signature layer."""

    layer: Digest
    ok: bool
    # "verified with key cosign.pub" / "signed by another key" / "payload is for sha256:..." /
    # "payload names docker.io/other/repo" / "layer does not match its digest" / ...
    reason: str
    signer: str | None = None  # key ref or certificate identity, when verified

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready verdict."""
        return {
            "layer": str(self.layer),
            "verified": self.ok,
            "reason": self.reason,
            "signer": self.signer,
        }


@dataclass(slots=True)
class VerificationReport:
    """Every signature of one digest and its verdict."""

    image: Reference  # with digest
    checks: list[SignatureCheck] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """True if at least one signature verified under the policy."""
        return any(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready report."""
        return {
            "image": str(self.image),
            "digest": str(self.image.digest) if self.image.digest else None,
            "verified": self.verified,
            "signatures": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class SignOutcome:
    """What ``sign_image`` did."""

    image: Reference  # with digest
    signature: Reference  # the sha256-<hex>.sig tag
    status: Literal["signed", "already-signed"]
    key_id: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "image": str(self.image),
            "digest": str(self.image.digest) if self.image.digest else None,
            "signature": str(self.signature),
            "status": self.status,
            "keyId": self.key_id,
        }


# ----------------------------------------------------------------------------- payload


def cosign_repository_name(image: Reference) -> str:
    """The repository as cosign writes it in a payload (go-containerregistry's Repository.Name).

    Docker Hub is ``index.docker.io/library/alpine`` there, not ``docker.io/...``.
    """
    registry = "index.docker.io" if image.registry == DEFAULT_REGISTRY else image.registry
    return f"{registry}/{image.repository}"


def simple_signing_payload(
    docker_reference: str, digest: Digest, optional: Mapping[str, str] | None = None
) -> bytes:
    """The cosign simple-signing payload naming ``docker_reference`` and ``digest``."""
    # Field order is Go's struct order; optional is a Go map (sorted keys), null when empty.
    document: dict[str, Any] = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": str(digest)},
            "type": SIGNATURE_TYPE,
        },
        "optional": {key: optional[key] for key in sorted(optional)} if optional else None,
    }
    return go_json(document)


@dataclass(frozen=True, slots=True)
class _Payload:
    digest: str
    reference: str


def _parse_payload(payload: bytes) -> _Payload:
    """The digest and reference of a payload, read as strictly as containers/image reads it."""
    doc = exact_object(
        strict_json(payload, "payload"),
        {"critical": dict, "optional": (dict, type(None))},
        "payload",
    )
    critical = exact_object(
        doc["critical"], {"identity": dict, "image": dict, "type": str}, "critical"
    )
    if critical["type"] != SIGNATURE_TYPE:
        raise Malformed(f"critical.type is {critical['type']!r}, not {SIGNATURE_TYPE!r}")
    image = exact_object(critical["image"], {"docker-manifest-digest": str}, "critical.image")
    identity = exact_object(critical["identity"], {"docker-reference": str}, "critical.identity")
    digest = image["docker-manifest-digest"]
    try:
        Digest.parse(digest)
    except InvalidDigestError as exc:
        raise Malformed(f"critical.image.docker-manifest-digest: {exc.message}") from None
    return _Payload(digest=digest, reference=identity["docker-reference"])


# ----------------------------------------------------------------------------- verify


class _Refused(Exception):
    """The signature is not accepted; the message is the reason."""


def _check_signature(
    payload: bytes, signature: bytes, annotations: Mapping[str, str], policy: TrustPolicy
) -> tuple[str, str]:
    """(signer, reason) for a signature one of the policy's keys or identities made."""
    for key in policy.keys:
        try:
            key.verify(payload, signature)
        except SignatureError:
            continue
        return key.ref, f"verified with key {key.ref}"
    has_certificate = CERTIFICATE_ANNOTATION in annotations
    keyless_reasons: list[str] = []
    if policy.keyless and has_certificate:
        for wanted in policy.keyless:
            why = check_keyless(
                payload,
                signature,
                annotations,
                identity=wanted.identity,
                issuer=wanted.issuer,
                fulcio_roots=wanted.fulcio_roots,
                rekor_keys=wanted.rekor_keys,
            )
            if why is None:
                return wanted.identity, f"verified keyless: {wanted.identity} ({wanted.issuer})"
            keyless_reasons.append(why)
    if keyless_reasons:
        reasons = "; ".join(dict.fromkeys(keyless_reasons))
        raise _Refused(f"signed by another key; keyless: {reasons}" if policy.keys else reasons)
    if policy.keyless and not policy.keys:
        raise _Refused(f"not a keyless signature (no {CERTIFICATE_ANNOTATION})")
    if not policy.keys:
        raise _Refused("no key or keyless identity to verify with")
    signed_by = certificate_identity(annotations) if has_certificate else None
    if signed_by:
        raise _Refused(f"signed by another key (a certificate for {signed_by})")
    raise _Refused("signed by another key")


def _allowed_names(image: Reference, policy: TrustPolicy) -> set[str]:
    if not policy.identities:
        return {image.name}
    return {Reference.parse(identity).name for identity in policy.identities}


def verify_signature_layer(
    payload: bytes,
    annotations: Mapping[str, str],
    image: Reference,
    policy: TrustPolicy,
) -> SignatureCheck:
    """Judge one signature layer (its blob and annotations) for ``image`` (with digest); offline."""
    if image.digest is None:
        raise ValueError("verify_signature_layer needs an image reference with a digest")
    layer = Digest.of(payload)

    def refused(reason: str) -> SignatureCheck:
        return SignatureCheck(layer, False, reason)

    if len(payload) > MAX_PAYLOAD_BYTES:
        return refused(
            f"payload is {len(payload)} bytes; refusing more than {size_text(MAX_PAYLOAD_BYTES)}"
        )
    for key, value in annotations.items():
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ANNOTATION_BYTES:
            return refused(
                f"annotation {key[:100]} is {size} bytes; refusing more than "
                f"{size_text(MAX_ANNOTATION_BYTES)}"
            )
    encoded = annotations.get(SIGNATURE_ANNOTATION)
    if not encoded:
        return refused(f"no signature annotation ({SIGNATURE_ANNOTATION})")
    try:
        signature = b64decode(encoded, "signature annotation")
    except Malformed as exc:
        return refused(f"malformed {exc}")
    try:
        claims = _parse_payload(payload)
    except Malformed as exc:
        return refused(f"malformed payload: {exc}")
    try:
        signer, verified = _check_signature(payload, signature, annotations, policy)
    except _Refused as exc:
        return refused(str(exc))
    if claims.digest != str(image.digest):
        return refused(f"payload is for {claims.digest}")
    if not policy.any_identity:
        try:
            named = Reference.parse(claims.reference)
        except InvalidReferenceError:
            return refused(f"payload names {claims.reference[:300]!r}, not an image reference")
        if named.name not in _allowed_names(image, policy):
            return refused(f"payload names {claims.reference}")
    return SignatureCheck(layer, True, verified, signer)


def judge_layer(
    descriptor: Descriptor, blob: bytes | None, image: Reference, policy: TrustPolicy
) -> SignatureCheck:
    """Judge a layer of a signature manifest and the blob fetched for it; offline.

    ``blob`` is None when it could not be fetched (or was not, being too large to be a payload).
    """

    def refused(reason: str) -> SignatureCheck:
        return SignatureCheck(descriptor.digest, False, reason)

    if descriptor.media_type != SIGNATURE_MEDIA_TYPE:
        return refused(f"not a signature layer ({descriptor.media_type[:200]})")
    if descriptor.size > MAX_PAYLOAD_BYTES:
        return refused(
            f"payload is {descriptor.size} bytes; refusing more than {size_text(MAX_PAYLOAD_BYTES)}"
        )
    if blob is None:
        return refused("layer blob is missing from the registry")
    if len(blob) != descriptor.size or Digest.of(blob, descriptor.digest.algorithm) != (
        descriptor.digest
    ):
        return refused("layer blob does not match its digest")
    return replace(
        verify_signature_layer(blob, descriptor.annotations, image, policy),
        layer=descriptor.digest,
    )


def parse_signature_manifest(data: bytes, where: str) -> tuple[dict[str, Any], Manifest]:
    """A signature manifest's JSON and what it says; SignatureError if it is not one."""
    return parse_attachment_manifest(data, where, "signature")


# ----------------------------------------------------------------------------- registry


def signature_tag(digest: Digest) -> str:
    """The tag cosign keeps a digest's signatures under: ``sha256-<hex>.sig``."""
    return f"{digest.tag_form}.sig"


async def _fetch_signature_manifest(
    client: RegistryClient, ref: Reference
) -> AttachedManifest | None:
    """The signature manifest at ``ref``, None if there is none; SignatureError if unreadable."""
    return await fetch_attachment_manifest(client, ref, "signature")


async def _referrer_manifests(client: RegistryClient, subject: Reference) -> list[AttachedManifest]:
    """The cosign signatures stored as OCI 1.1 referrers of ``subject``."""
    try:
        found = await client.referrers(subject, SIGNATURE_ARTIFACT_TYPE)
    except NotFoundError:
        return []
    except InvalidManifestError as exc:
        raise SignatureError(f"the referrers of {subject} cannot be read: {exc.message}") from None
    manifests = []
    for desc in found[:MAX_SIGNATURE_LAYERS]:
        manifest = await _fetch_signature_manifest(client, subject.with_digest(desc.digest))
        if manifest is not None:
            manifests.append(manifest)
    return manifests


async def verify_image(
    client: RegistryClient,
    image: Reference,
    policy: TrustPolicy,
    *,
    signature_repositories: Sequence[Reference] = (),
) -> VerificationReport:
    """Check every signature of ``image`` (with digest) under ``policy``; never raises on a bad one.

    Signatures come from the ``.sig`` tag (and referrers of cosign's media type) in the image's
    repository, or in ``signature_repositories`` (cosign's COSIGN_REPOSITORY) when given.
    A ``.sig`` manifest that is malformed or oversized raises SignatureError.
    """
    digest = image.digest
    if digest is None:
        raise ValueError("verify_image needs an image reference with a digest")
    report = VerificationReport(image)
    seen: set[tuple[Digest, str]] = set()
    for repository in signature_repositories or (image,):
        manifests: list[AttachedManifest] = []
        tagged = await _fetch_signature_manifest(client, repository.with_tag(signature_tag(digest)))
        if tagged is not None:
            manifests.append(tagged)
        manifests += await _referrer_manifests(client, repository.with_digest(digest))
        for manifest in manifests:
            for desc in manifest.parsed.layers:
                # The same layer reached twice (tag and referrer) is one signature.
                key = (desc.digest, desc.annotations.get(SIGNATURE_ANNOTATION, ""))
                if key in seen:
                    continue
                seen.add(key)
                blob = None
                if desc.media_type == SIGNATURE_MEDIA_TYPE and desc.size <= MAX_PAYLOAD_BYTES:
                    blob = await read_layer(client, repository, desc)
                report.checks.append(judge_layer(desc, blob, image, policy))
    return report


# ----------------------------------------------------------------------------- sign


def _signed_by(
    manifest: AttachedManifest, payload: bytes, layer_digest: Digest, key: PublicKey
) -> bool:
    """Whether a layer holds this exact payload with a signature ``key`` made."""
    for desc in manifest.parsed.layers:
        if desc.media_type != SIGNATURE_MEDIA_TYPE or desc.digest != layer_digest:
            continue
        try:
            key.verify(payload, b64decode(desc.annotations.get(SIGNATURE_ANNOTATION, ""), "sig"))
        except (SignatureError, Malformed):
            continue
        return True
    return False


async def sign_image(
    client: RegistryClient,
    image: Reference,
    signer: Signer,
    *,
    annotations: Mapping[str, str] | None = None,
) -> SignOutcome:
    """Sign ``image`` (with digest) and append the layer to its ``.sig`` manifest.

    A signature by the same key over the same payload already there means ``already-signed``
    and nothing is written. The blob goes before the manifest, so a failure leaves no half
    signature.
    """
    digest = image.digest
    if digest is None:
        raise ValueError("sign_image needs an image reference with a digest")
    payload = simple_signing_payload(cosign_repository_name(image), digest, annotations)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SignatureError(
            f"the signature payload would be {len(payload)} bytes; refusing more than "
            f"{size_text(MAX_PAYLOAD_BYTES)}",
            hint="give fewer or shorter annotations",
        )
    layer_digest = Digest.of(payload)
    sig_ref = image.with_tag(signature_tag(digest))
    public = await asyncio.to_thread(signer.public_key)

    def outcome(status: Literal["signed", "already-signed"]) -> SignOutcome:
        return SignOutcome(image.with_digest(digest), sig_ref, status, public.key_id)

    existing = await fetch_for_append(client, sig_ref, "signature")
    if existing is not None and _signed_by(existing, payload, layer_digest, public):
        return outcome("already-signed")

    signature = await asyncio.to_thread(signer.sign, payload)
    # A signer that returns something its own key does not verify must not write anything.
    public.verify(payload, signature)
    layer_annotations = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    extra = getattr(signer, "layer_annotations", None)
    if callable(extra):
        layer_annotations.update(extra(payload, signature))
    layer: dict[str, Any] = {
        "mediaType": SIGNATURE_MEDIA_TYPE,
        "size": len(payload),
        "digest": str(layer_digest),
        "annotations": {key: layer_annotations[key] for key in sorted(layer_annotations)},
    }

    async def present(manifest: AttachedManifest) -> bool:
        return _signed_by(manifest, payload, layer_digest, public)

    appended = await append_layer(
        client, sig_ref, payload, layer, existing=existing, present=present, kind="signature"
    )
    return outcome("signed" if appended else "already-signed")
