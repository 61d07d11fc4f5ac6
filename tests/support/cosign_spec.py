"""A cosign signature verifier written from cosign's specs/SIGNATURE_SPEC.md, and nothing else.

The referee for what ``imgctl sign`` pushes: it shares no code with imgctl (it imports only
httpx, json, base64, hashlib and cryptography) and reads the registry over plain HTTP itself.
What it checks, section by section of the specification:

- Tag-based discovery: the signatures of ``sha256:<hex>`` are at tag ``sha256-<hex>.sig``
  (":" replaced by "-", ".sig" appended), in the image's repository.
- Object type: an OCI Image Manifest V1; each signature is one layer. "Only one image manifest
  is created for every signed object. Multiple signatures can be embedded in one image manifest."
- Payload and mediaType: the payload bytes are the layer's blob, referenced by digest and size,
  media type ``application/vnd.dev.cosign.simplesigning.v1+json``. The digest is "calculated and
  verified by both the registry and client-tooling": this client verifies it.
- Signature: base64 in the layer annotation ``dev.cosignproject.cosign/signature``.
- Simple Signing payload: ``critical.type`` is ``cosign container image signature`` and the
  payload "MUST contain the digest of the image it references" at
  ``critical.image.docker-manifest-digest``. ``critical.identity.docker-reference`` "is ignored".
- Signature scheme: ECDSA-P256 with SHA-256 (the one scheme implementations must support).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class SpecViolation(Exception):
    """What the registry holds is not a signature manifest as the specification describes."""


@dataclass(frozen=True)
class Verdict:
    layer: str  # the layer's digest
    ok: bool
    reason: str


@dataclass(frozen=True)
class SignatureManifest:
    raw: bytes
    document: dict[str, object]
    layers: list[dict[str, object]]


def signature_tag(digest: str) -> str:
    """Tag-based discovery: ``sha256:abc`` -> ``sha256-abc.sig``."""
    return digest.replace(":", "-") + ".sig"


def fetch_manifest(base_url: str, repository: str, digest: str) -> SignatureManifest:
    """The signature manifest of ``digest``; SpecViolation if it is not an OCI image manifest."""
    response = httpx.get(
        f"{base_url}/v2/{repository}/manifests/{signature_tag(digest)}",
        headers={"Accept": OCI_MANIFEST},
        timeout=30,
    )
    if response.status_code != 200:
        raise SpecViolation(f"no signature manifest: HTTP {response.status_code}")
    document = json.loads(response.content)
    if document.get("schemaVersion") != 2 or document.get("mediaType") != OCI_MANIFEST:
        raise SpecViolation(f"not an OCI image manifest: {document.get('mediaType')!r}")
    if not isinstance(document.get("config"), dict):
        raise SpecViolation("an OCI image manifest has a config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise SpecViolation("no layers")
    return SignatureManifest(response.content, document, layers)


def fetch_blob(base_url: str, repository: str, digest: str) -> bytes:
    response = httpx.get(f"{base_url}/v2/{repository}/blobs/{digest}", timeout=30)
    if response.status_code != 200:
        raise SpecViolation(f"blob {digest}: HTTP {response.status_code}")
    return response.content


def judge(layer: dict[str, object], blob: bytes, digest: str, public_key_pem: bytes) -> Verdict:
    """One layer against the image digest and an ECDSA-P256 public key."""
    name = str(layer.get("digest"))

    def no(reason: str) -> Verdict:
        return Verdict(name, False, reason)

    if layer.get("mediaType") != SIMPLE_SIGNING:
        return no(f"media type {layer.get('mediaType')!r}")
    if "sha256:" + hashlib.sha256(blob).hexdigest() != name or len(blob) != layer.get("size"):
        return no("payload blob does not match its digest and size")
    annotations = layer.get("annotations")
    if not isinstance(annotations, dict) or SIGNATURE_ANNOTATION not in annotations:
        return no("no signature annotation")
    try:
        signature = base64.b64decode(annotations[SIGNATURE_ANNOTATION], validate=True)
    except binascii.Error:
        return no("signature is not base64")
    key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    try:
        key.verify(signature, blob, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return no("signature does not verify")
    payload = json.loads(blob)
    critical = payload.get("critical", {})
    if critical.get("type") != COSIGN_TYPE:
        return no(f"critical.type {critical.get('type')!r}")
    if critical.get("image", {}).get("docker-manifest-digest") != digest:
        return no("payload names another digest")
    return Verdict(name, True, "verified")


def verify(base_url: str, repository: str, digest: str, public_key_pem: bytes) -> list[Verdict]:
    """Every signature layer of ``digest`` judged against ``public_key_pem``."""
    manifest = fetch_manifest(base_url, repository, digest)
    verdicts = []
    for layer in manifest.layers:
        blob = fetch_blob(base_url, repository, str(layer["digest"]))
        verdicts.append(judge(layer, blob, digest, public_key_pem))
    return verdicts
