"""cosign simple signing: the payload, the ``sha256-<hex>.sig`` manifest, signing and verifying.

INTERFACE STUB (issue 18): the signatures below are fixed; the bodies are being written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from imgctl.oci.digest import Digest
from imgctl.oci.reference import Reference
from imgctl.remote._client import RegistryClient
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
        raise NotImplementedError


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
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class SignOutcome:
    """What ``sign_image`` did."""

    image: Reference  # with digest
    signature: Reference  # the sha256-<hex>.sig tag
    status: Literal["signed", "already-signed"]
    key_id: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        raise NotImplementedError


def simple_signing_payload(
    docker_reference: str, digest: Digest, optional: Mapping[str, str] | None = None
) -> bytes:
    """The cosign simple-signing payload naming ``docker_reference`` and ``digest``."""
    raise NotImplementedError


def verify_signature_layer(
    payload: bytes,
    annotations: Mapping[str, str],
    image: Reference,
    policy: TrustPolicy,
) -> SignatureCheck:
    """Judge one signature layer (its blob and annotations) for ``image`` (with digest); offline."""
    raise NotImplementedError


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
    raise NotImplementedError


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
    raise NotImplementedError
