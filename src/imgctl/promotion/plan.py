"""Declarative promotion: what each manifest edge needs, and doing it.

``make_plan`` reads only the repositories the edges name — a HEAD of the destination tag (or
digest), then, only when that is not the wanted digest, HEADs of the digest in the destination
and the source — and gives every edge one action:

* ``present``: the destination tag (or, tagless, the digest) already is the wanted digest;
* ``copy``: the digest is in the source and not in the destination;
* ``add_tag``: the digest is in the destination, only the tag is missing;
* ``lost``: the digest is in neither (reported, not fatal, as in kpromo);
* ``tag_move``: the destination tag points at another digest — refused unless allowed.

``execute`` performs copies and tag additions with the copy engine; a failing edge does not stop
the others, and nothing is ever deleted. ``shard_of`` splits edges between parallel runs by a
stable hash, so every edge belongs to exactly one shard.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgctl.errors import ImgctlError
from imgctl.oci import Digest, Reference
from imgctl.promotion.manifests import Edge
from imgctl.remote import CopyOptions, CopyProgress, RegistryClient, copy_images

__all__ = [
    "ACTIONS",
    "EdgeAction",
    "EdgeOutcome",
    "Plan",
    "execute",
    "make_plan",
    "select_shard",
    "shard_of",
]

ACTIONS = ("present", "copy", "add_tag", "lost", "tag_move")


def shard_of(edge: Edge, count: int) -> int:
    """The shard (0..count-1) an edge belongs to: a stable hash of its key."""
    digest = hashlib.sha256(edge.key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def _reference(repository: str, *, tag: str | None = None, digest: str | None = None) -> Reference:
    text = repository + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return Reference.parse(text)


@dataclass(frozen=True, slots=True)
class EdgeAction:
    """What an edge needs; ``current`` is the digest a moving tag points at now."""

    edge: Edge
    action: str
    current: str | None = None
    error: str | None = None  # the destination or source could not be read

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out: dict[str, Any] = {
            "image": self.edge.image,
            "digest": self.edge.digest,
            "tag": self.edge.tag,
            "source": f"{self.edge.source_repository}@{self.edge.digest}",
            "destination": self.edge.destination,
            "action": self.action,
        }
        if self.current:
            out["current"] = self.current
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Plan:
    """Every edge with its action; ``requests`` counts what reading the registries cost."""

    actions: list[EdgeAction]
    requests: int = 0
    allow_tag_moves: bool = False

    def count(self, action: str) -> int:
        """How many edges need ``action``."""
        return sum(1 for a in self.actions if a.action == action)

    @property
    def refused(self) -> list[EdgeAction]:
        """Tag moves that will not be done (all of them unless tag moves are allowed)."""
        return [] if self.allow_tag_moves else [a for a in self.actions if a.action == "tag_move"]

    @property
    def unreadable(self) -> list[EdgeAction]:
        """Edges whose registries could not be read."""
        return [a for a in self.actions if a.error]

    def work(self) -> list[EdgeAction]:
        """The edges ``execute`` acts on."""
        wanted = {"copy", "add_tag"} | ({"tag_move"} if self.allow_tag_moves else set())
        return [a for a in self.actions if a.action in wanted and not a.error]

    def summary(self) -> dict[str, int]:
        """Edges per action."""
        counts = {action: self.count(action) for action in ACTIONS}
        counts["edges"] = len(self.actions)
        counts["unreadable"] = len(self.unreadable)
        return counts

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable plan (``--output json``)."""
        return {
            "summary": self.summary(),
            "allow_tag_moves": self.allow_tag_moves,
            "requests": self.requests,
            "edges": [a.as_dict() for a in self.actions],
        }


class _Reader:
    """Registry reads shared by all edges, each done once."""

    def __init__(self, client: RegistryClient, concurrency: int) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(concurrency)
        self._heads: dict[str, asyncio.Task[str | None]] = {}

    def _once(self, cache: dict[str, Any], key: str, work: Callable[[], Awaitable[Any]]) -> Any:
        task = cache.get(key)
        if task is None:
            task = cache[key] = asyncio.ensure_future(work())
        return task

    async def digest(self, repository: str, identifier: str) -> str | None:
        """The digest ``repository:tag`` or ``repository@digest`` resolves to, or None."""

        async def read() -> str | None:
            if identifier.startswith("sha256:"):
                ref = _reference(repository, digest=identifier)
            else:
                ref = _reference(repository, tag=identifier)
            async with self.gate:
                descriptor = await self.client.head_manifest(ref)
            return str(descriptor.digest) if descriptor else None

        key = f"{repository}{'@' if identifier.startswith('sha256:') else ':'}{identifier}"
        task: asyncio.Task[str | None] = self._once(self._heads, key, read)
        return await asyncio.shield(task)


async def _classify(reader: _Reader, edge: Edge) -> EdgeAction:
    destination = edge.destination_repository
    try:
        if edge.tag is not None:
            # One HEAD answers both "is the tag there?" (404) and "where does it point?".
            current = await reader.digest(destination, edge.tag)
            if current == edge.digest:
                return EdgeAction(edge, "present")
            if current is not None:
                return EdgeAction(edge, "tag_move", current=current)
        if await reader.digest(destination, edge.digest) == edge.digest:
            return EdgeAction(edge, "present" if edge.tag is None else "add_tag")
        if await reader.digest(edge.source_repository, edge.digest) == edge.digest:
            return EdgeAction(edge, "copy")
        return EdgeAction(edge, "lost")
    except ImgctlError as exc:
        # One unreadable repository must not hide what the rest of the plan says.
        return EdgeAction(edge, "copy", error=str(exc))


async def make_plan(
    client: RegistryClient,
    edges: Sequence[Edge],
    *,
    allow_tag_moves: bool = False,
    concurrency: int = 16,
) -> Plan:
    """Classify every edge by reading the registries; writes nothing."""
    before = client.stats.requests
    reader = _Reader(client, concurrency)
    actions = list(await asyncio.gather(*(_classify(reader, edge) for edge in edges)))
    return Plan(actions, client.stats.requests - before, allow_tag_moves)


@dataclass(frozen=True, slots=True)
class EdgeOutcome:
    """What executing one edge did."""

    edge: Edge
    action: str
    ok: bool
    error: str | None = None
    bytes_copied: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "destination": self.edge.destination,
            "digest": self.edge.digest,
            "action": self.action,
            "ok": self.ok,
            "error": self.error,
            "bytes_copied": self.bytes_copied,
        }


@dataclass
class _Pairs:
    sources: list[Reference] = field(default_factory=list)
    destinations: list[Reference] = field(default_factory=list)
    actions: list[EdgeAction] = field(default_factory=list)


async def execute(
    client: RegistryClient,
    plan: Plan,
    *,
    concurrency: int = 8,
    progress: CopyProgress | None = None,
) -> list[EdgeOutcome]:
    """Do the plan's copies, tag additions (and allowed tag moves); failures are per edge."""
    pairs = _Pairs()
    for action in plan.work():
        edge = action.edge
        if action.action == "add_tag":
            # The bytes are already in the destination: tag them from there, not the source.
            source = _reference(edge.destination_repository, digest=edge.digest)
        else:
            source = _reference(edge.source_repository, digest=edge.digest)
        destination = _reference(edge.destination_repository, tag=edge.tag, digest=None)
        if edge.tag is None:
            destination = destination.with_digest(Digest.parse(edge.digest))
        pairs.sources.append(source)
        pairs.destinations.append(destination)
        pairs.actions.append(action)
    if not pairs.actions:
        return []
    options = CopyOptions(image_concurrency=concurrency)
    results = await copy_images(
        client, list(zip(pairs.sources, pairs.destinations, strict=True)), options, progress
    )
    outcomes = []
    for action, result in zip(pairs.actions, results, strict=True):
        if result.error is None and str(result.digest) != action.edge.digest:
            error = f"copied {result.digest}, expected {action.edge.digest}"
            outcomes.append(EdgeOutcome(action.edge, action.action, False, error))
            continue
        outcomes.append(
            EdgeOutcome(
                action.edge,
                action.action,
                result.error is None,
                str(result.error) if result.error else None,
                result.bytes_copied,
            )
        )
    return outcomes


def select_shard(edges: Iterable[Edge], index: int, count: int) -> list[Edge]:
    """The edges of shard ``index`` of ``count``."""
    return [edge for edge in edges if shard_of(edge, count) == index]
