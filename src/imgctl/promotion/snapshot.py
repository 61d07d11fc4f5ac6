"""Snapshots: what a registry (or the manifests, for one registry) holds, as images.yaml data.

The result maps image name -> digest -> tags, ready for ``snapshot_yaml`` / ``snapshot_csv``;
written as YAML it is an ``images.yaml`` that can be promoted from again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from imgctl.errors import UsageError
from imgctl.oci import Reference
from imgctl.oci.manifest import Index
from imgctl.promotion.manifests import Manifest, edges_of
from imgctl.remote import RegistryClient

__all__ = ["Inventory", "filter_by_tag", "manifest_snapshot", "registry_snapshot"]

Inventory = dict[str, dict[str, list[str]]]  # image name -> digest -> tags


def _split(target: str) -> tuple[str, str]:
    """``REG[/path]`` -> (registry host, path prefix), checked against the reference grammar."""
    host, _, prefix = target.strip().rstrip("/").partition("/")
    try:
        parsed = Reference.parse(f"{target.strip().rstrip('/')}/probe")
    except Exception as exc:
        raise UsageError(f"--snapshot {target!r} is not REGISTRY[/PATH]: {exc}") from None
    if parsed.registry != host:
        raise UsageError(f"--snapshot {target!r}: {host!r} is not a registry host")
    return host, prefix


async def registry_snapshot(
    client: RegistryClient,
    target: str,
    *,
    tag: str | None = None,
    minimal: bool = False,
    concurrency: int = 16,
) -> Inventory:
    """Every repository under ``REG[/path]``, with its tagged digests.

    Unless ``minimal``, the untagged platform manifests of each index are added as tagless
    digests.
    """
    registry, prefix = _split(target)
    repositories = [
        name
        async for name in client.iter_repositories(registry)
        if not prefix or name == prefix or name.startswith(prefix + "/")
    ]
    gate = asyncio.Semaphore(concurrency)
    inventory: Inventory = {}

    async def one_tag(repository: str, image: str, tag_name: str) -> None:
        ref = Reference.parse(f"{registry}/{repository}:{tag_name}")
        async with gate:
            descriptor = await client.head_manifest(ref)
        if descriptor is None:
            return  # deleted between the listing and now
        digests = inventory.setdefault(image, {})
        digests.setdefault(str(descriptor.digest), []).append(tag_name)
        if not minimal and descriptor.media_type in _INDEX_TYPES:
            async with gate:
                fetched = await client.get_manifest(ref.with_digest(descriptor.digest))
            if isinstance(fetched.parsed, Index):
                for child in fetched.parsed.manifests:
                    digests.setdefault(str(child.digest), [])

    async def one_repository(repository: str) -> None:
        image = repository[len(prefix) :].lstrip("/") if prefix else repository
        if not image:
            image = repository.rsplit("/", 1)[-1]
        async with gate:
            tags = await client.list_tags(Reference.parse(f"{registry}/{repository}"))
        await asyncio.gather(*(one_tag(repository, image, t) for t in tags))

    await asyncio.gather(*(one_repository(r) for r in repositories))
    if tag is not None:
        inventory = filter_by_tag(inventory, tag)
    return {
        image: {d: sorted(t) for d, t in digests.items()} for image, digests in inventory.items()
    }


def filter_by_tag(inventory: Inventory, tag: str) -> Inventory:
    """The digests carrying ``tag``, each with all its tags (kpromo's FilterByTag)."""
    kept = {
        image: {digest: tags for digest, tags in digests.items() if tag in tags}
        for image, digests in inventory.items()
    }
    return {image: digests for image, digests in kept.items() if digests}


_INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


def manifest_snapshot(manifests: Sequence[Manifest], registry: str) -> Inventory:
    """What the manifests say ``registry`` (a host, maybe with a path) should hold.

    As kpromo's EdgesToRegInvImage, from the edges (so a tag wanted at two digests is refused
    here too): every destination at ``registry`` or under it, the rest of the destination's
    path put before the image name (``us.gcr.io/prod`` finds ``us.gcr.io/prod/team-a``'s
    ``app`` as ``team-a/app``). Unlike kpromo, only whole path segments match:
    ``us.gcr.io/production`` is not under ``us.gcr.io/prod``.
    """
    wanted = registry.strip().rstrip("/")

    def under(destination: str) -> bool:
        destination = destination.rstrip("/")
        return destination == wanted or destination.startswith(f"{wanted}/")

    if not any(under(r.name) for m in manifests for r in m.destinations):
        names = sorted({r.name for m in manifests for r in m.destinations})
        raise UsageError(
            f"no manifest promotes to {registry!r}",
            hint=f"destination registries in these manifests: {', '.join(names) or 'none'}",
        )
    inventory: dict[str, dict[str, set[str]]] = {}
    for edge in edges_of(manifests):
        destination = edge.destination_registry.rstrip("/")
        if not under(destination):
            continue
        below = destination[len(wanted) :].strip("/")
        name = f"{below}/{edge.image}" if below else edge.image
        tags = inventory.setdefault(name, {}).setdefault(edge.digest, set())
        if edge.tag is not None:
            tags.add(edge.tag)
    return {
        name: {digest: sorted(tags) for digest, tags in digests.items()}
        for name, digests in inventory.items()
    }
