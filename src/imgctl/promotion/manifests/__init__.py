"""kpromo (Container Image Promoter) manifests: plain files, thin directories, edges, snapshots.

A plain manifest is one YAML file ``{registries, images}``. A thin directory splits it:
``manifests/<x>/promoter-manifest.yaml`` holds ``{registries}`` (an ``imagesPath`` key is accepted
and ignored) and ``images/<x>/images.yaml`` the list of images. Parsing is strict, like kpromo's
``yaml.UnmarshalStrict``: unknown keys, duplicate keys and wrong types are errors; imgctl's strict
YAML (``_internal.strict_yaml``) also refuses keys written twice in other spellings and merges
that hide a key. Files are read as bounded UTF-8 text (``_internal.files``).

Plain manifests are validated as kpromo validates them: the first problem is an error. kpromo
runs no such validation on thin trees, and the real ones (kubernetes/k8s.io) hold entries it
would refuse; ``load_thin_tree`` therefore reads a thin tree as kpromo does and turns what
imgctl's validation finds in one entry (an image, or one digest with its tags) into a
``ManifestWarning`` naming file and line, skipping that entry only; ``strict=True`` makes them
errors. What makes a whole file unreadable or ambiguous stays an error either way.

``edges_of`` turns manifests into promotion edges (image x digest x tag x destination) and refuses
two different digests for one destination tag. ``snapshot_yaml`` / ``snapshot_csv`` write the
formats ``kpromo cip --snapshot`` prints; ``load_images`` reads the YAML one back.

Pure: reads files, never the network.
"""

from __future__ import annotations

from imgctl.promotion.manifests._edges import edges_of
from imgctl.promotion.manifests._load import (
    IMAGES_FILE,
    MANIFEST_FILE,
    ManifestWarning,
    ThinTree,
    load_images,
    load_manifest,
    load_thin_manifests,
    load_thin_tree,
)
from imgctl.promotion.manifests._model import Edge, ImageEntry, Manifest, RegistryEntry
from imgctl.promotion.manifests._snapshots import snapshot_csv, snapshot_yaml

__all__ = [
    "IMAGES_FILE",
    "MANIFEST_FILE",
    "Edge",
    "ImageEntry",
    "Manifest",
    "ManifestWarning",
    "RegistryEntry",
    "ThinTree",
    "edges_of",
    "load_images",
    "load_manifest",
    "load_thin_manifests",
    "load_thin_tree",
    "snapshot_csv",
    "snapshot_yaml",
]
