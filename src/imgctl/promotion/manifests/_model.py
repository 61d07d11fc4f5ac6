"""The data a kpromo manifest holds: registries, images with their digests and tags, edges."""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from imgctl.errors import ManifestError

__all__ = ["Edge", "ImageEntry", "Manifest", "RegistryEntry", "bulk"]


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One ``registries`` entry: a registry name (host, optional port and path) and its role."""

    name: str
    src: bool = False
    service_account: str | None = None


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One ``images`` entry: an image name and its digests, each with its tags (maybe none)."""

    name: str
    dmap: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: exactly one source registry, destinations, images."""

    registries: tuple[RegistryEntry, ...]
    images: tuple[ImageEntry, ...]
    path: str
    images_path: str | None = None

    @property
    def source(self) -> RegistryEntry:
        """The registry marked ``src: true``."""
        for registry in self.registries:
            if registry.src:
                return registry
        raise ManifestError(f"{self.path}: source registry must be set", path=self.path)

    @property
    def destinations(self) -> tuple[RegistryEntry, ...]:
        """Every registry but the source, in file order."""
        return tuple(r for r in self.registries if not r.src)


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class Edge:
    """One promotion: ``digest`` (and ``tag``, unless tagless) from source to destination.

    Ordered by source, destination, image, digest, then tag, a tagless edge first.
    """

    source_registry: str
    destination_registry: str
    image: str
    digest: str
    tag: str | None

    @property
    def sort_key(self) -> tuple[str, str, str, str, bool, str]:
        """What edges sort by (None cannot be ordered against a str, so not ``tag`` itself)."""
        return (
            self.source_registry,
            self.destination_registry,
            self.image,
            self.digest,
            self.tag is not None,
            self.tag or "",
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Edge):
            return NotImplemented
        return self.sort_key < other.sort_key

    @property
    def source_repository(self) -> str:
        """``<source registry>/<image>``."""
        return f"{self.source_registry}/{self.image}"

    @property
    def destination_repository(self) -> str:
        """``<destination registry>/<image>``."""
        return f"{self.destination_registry}/{self.image}"

    @property
    def destination(self) -> str:
        """What the edge writes: ``dst/repo:tag``, or ``dst/repo@digest`` when tagless."""
        target = f":{self.tag}" if self.tag is not None else f"@{self.digest}"
        return f"{self.destination_repository}{target}"

    @property
    def key(self) -> str:
        """``src/repo@digest -> dst/repo:tag`` (``dst/repo@digest`` when tagless)."""
        # One f-string, not the properties: select_shard hashes the key of every edge.
        image, digest, tag = self.image, self.digest, self.tag
        target = f"@{digest}" if tag is None else f":{tag}"
        source, destination = self.source_registry, self.destination_registry
        return f"{source}/{image}@{digest} -> {destination}/{image}{target}"


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Build many objects without the cycle collector.

    Hundreds of thousands of new tuples and edges (no cycles among them) make the collector
    walk every object again and again: with it, the edges of kubernetes/k8s.io's tree took
    2.5-3x as long. It runs again, as before, afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
