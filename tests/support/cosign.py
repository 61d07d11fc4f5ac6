"""A test-side reader of cosign signatures in a registry, sharing no code with imgctl.trust.

It reads the ``sha256-<hex>.sig`` manifest with skopeo (the independent client), each layer's
payload blob over plain HTTP, and checks the signature annotation with pyca/cryptography
(ECDSA P-256 over SHA-256, as cosign's SIGNATURE_SPEC.md describes), so a test can say which
keys signed a digest and what each payload names without trusting imgctl's own verifier.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .skopeo import skopeo

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def signature_tag(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.sig``."""
    return digest.replace(":", "-") + ".sig"


@dataclass
class Layer:
    """One signature layer: its payload (parsed) and whether ``key`` verifies it."""

    payload: dict[str, Any]
    raw: bytes
    signature: bytes

    @property
    def docker_reference(self) -> str:
        return str(self.payload["critical"]["identity"]["docker-reference"])

    @property
    def manifest_digest(self) -> str:
        return str(self.payload["critical"]["image"]["docker-manifest-digest"])

    def signed_by(self, key: ec.EllipticCurvePublicKey) -> bool:
        try:
            key.verify(self.signature, self.raw, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def signature_manifest(host: str, repository: str, digest: str) -> dict[str, Any] | None:
    """The ``.sig`` manifest of ``digest`` in HOST/REPOSITORY as skopeo reads it; None if none."""
    ref = f"docker://{host}/{repository}:{signature_tag(digest)}"
    try:
        raw = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout
    except RuntimeError as exc:
        if "manifest unknown" in str(exc).lower() or "not found" in str(exc).lower():
            return None
        raise
    document: dict[str, Any] = json.loads(raw)
    return document


def signature_layers(host: str, repository: str, digest: str) -> list[Layer]:
    """Every simple-signing layer of ``digest``'s signatures (empty when it has none)."""
    manifest = signature_manifest(host, repository, digest)
    if manifest is None:
        return []
    layers = []
    for layer in manifest["layers"]:
        assert layer["mediaType"] == SIMPLE_SIGNING, layer
        url = f"http://{host}/v2/{repository}/blobs/{layer['digest']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            raw = response.read()
        signature = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION])
        layers.append(Layer(json.loads(raw), raw, signature))
    return layers


def tags_of(host: str, repository: str) -> list[str]:
    """The tag list of HOST/REPOSITORY (empty when the repository does not exist)."""
    url = f"http://{host}/v2/{repository}/tags/list"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return list(body.get("tags") or [])
