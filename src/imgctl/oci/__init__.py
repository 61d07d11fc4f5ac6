"""Pure OCI data: references, digests, media types and manifests. No I/O."""

from imgctl.oci import mediatypes
from imgctl.oci.digest import Digest, Digester
from imgctl.oci.manifest import Descriptor, Index, Manifest, Platform, parse_manifest
from imgctl.oci.reference import (
    DEFAULT_REGISTRY,
    DEFAULT_TAG,
    Reference,
    canonical_registry,
    valid_repository,
    valid_tag,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "Descriptor",
    "Digest",
    "Digester",
    "Index",
    "Manifest",
    "Platform",
    "Reference",
    "canonical_registry",
    "mediatypes",
    "parse_manifest",
    "valid_repository",
    "valid_tag",
]
