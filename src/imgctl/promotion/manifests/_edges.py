"""Promotion edges: image x digest x tag x destination, one per destination, conflicts refused."""

from __future__ import annotations

from collections.abc import Sequence

from imgctl.errors import ManifestError
from imgctl.promotion.manifests._model import Edge, Manifest, bulk

__all__ = ["edges_of"]


def edges_of(manifests: Sequence[Manifest]) -> list[Edge]:
    """All promotion edges of ``manifests``, sorted, one per destination; refuse conflicting tags.

    One edge per image x digest x tag x destination; a digest without tags gives one tagless
    edge. When several edges write the same digest to the same destination (two manifests
    wanting one build at one tag, or two registry/image splits naming one repository), only the
    first in sort order is kept, as kpromo does. Two different digests for one destination tag
    are ``overlapping edges detected``.
    """
    with bulk():
        return _edges(manifests)


def _edges(manifests: Sequence[Manifest]) -> list[Edge]:
    # Plain tuples until the end: 700,000 edges (kubernetes/k8s.io) are built, deduplicated
    # and sorted several times faster than Edge objects are, which are made once, in order.
    # destination ("repo:tag" or "repo@digest") -> (sort key, the first file that wants it)
    best: dict[str, tuple[tuple[str, str, str, str, bool, str], str]] = {}
    # (destination repository, tag) -> digest -> the first file that wants it, when a tag is
    # wanted at two digests
    conflicts: dict[tuple[str, str], dict[str, str]] = {}
    for manifest in manifests:
        source = manifest.source.name
        destinations = [registry.name for registry in manifest.destinations]
        where = manifest.images_path or manifest.path
        for image in manifest.images:
            name = image.name
            for digest, tags in image.dmap.items():
                for destination in destinations:
                    repository = f"{destination}/{name}"
                    if not tags:
                        key = (source, destination, name, digest, False, "")
                        target = f"{repository}@{digest}"
                        known = best.get(target)
                        if known is None or key < known[0]:
                            best[target] = (key, where if known is None else known[1])
                        continue
                    for tag in tags:
                        key = (source, destination, name, digest, True, tag)
                        target = f"{repository}:{tag}"
                        known = best.get(target)
                        if known is None:
                            best[target] = (key, where)
                        elif known[0][3] != digest:
                            wanted = conflicts.setdefault((repository, tag), {})
                            wanted.setdefault(known[0][3], known[1])
                            wanted.setdefault(digest, where)
                        elif key < known[0]:
                            best[target] = (key, known[1])
    if conflicts:
        raise _overlap_error(sorted(conflicts.items()))
    return [
        Edge(src, dst, image, digest, tag if tagged else None)
        for (src, dst, image, digest, tagged, tag), _ in sorted(best.values())
    ]


def _overlap_error(conflicts: list[tuple[tuple[str, str], dict[str, str]]]) -> ManifestError:
    (repository, tag), wanted = conflicts[0]
    first, second, *others = sorted(wanted.items())
    message = (
        f"overlapping edges detected: {repository}:{tag} is wanted at {first[0]} ({first[1]})"
        f" and at {second[0]} ({second[1]})"
    )
    if others:
        message += f" and {len(others)} more digest(s)"
    if len(conflicts) > 1:
        message += f"; {len(conflicts) - 1} more destination tag(s) conflict"
    return ManifestError(
        message, path=first[1], hint="a tag can point at one digest only: fix one of the files"
    )
