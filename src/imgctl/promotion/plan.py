"""Declarative promotion: what each manifest edge needs, and doing it.

``make_plan`` reads only the repositories the edges name — a HEAD of the destination tag (or
digest), then, only when that is not the wanted digest, HEADs of the digest in the destination
and the source — and gives every edge one action:

* ``present``: the destination tag (or, tagless, the digest) already is the wanted digest;
* ``copy``: the digest is in the source and not in the destination;
* ``add_tag``: the digest is in the destination, only the tag is missing;
* ``lost``: the digest is in neither (reported, not fatal, as in kpromo);
* ``tag_move``: the destination tag points at another digest — refused unless allowed.

Unless ``referrers`` is ``none``, the plan also reads which referrers of each edge's digest
(signatures, attestations, SBOMs; ``imgctl.remote.plan_referrers``) the destination lacks: one
tag listing per source repository, and more only where referrers exist or the registry serves
the referrers API. An edge whose image is present but whose referrers are not is work too.

``execute`` performs copies and tag additions with the copy engine; a failing edge does not stop
the others, and nothing is ever deleted. ``shard_of`` splits edges between parallel runs by a
stable hash, so every edge belongs to exactly one shard.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from imgctl.errors import ImgctlError
from imgctl.oci import Digest, Reference, valid_tag
from imgctl.promotion.manifests import Edge
from imgctl.remote import (
    CopyOptions,
    CopyProgress,
    CopyResult,
    ReferrerCopy,
    ReferrerSelection,
    RegistryClient,
    copy_images,
    plan_referrers,
)

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
# What a copy would do to a referrer, in the plan's words.
_REFERRER_ACTIONS = {"copied": "copy", "merged": "merge", "unchanged": "present", "skipped": "skip"}


def _camel(name: str) -> str:
    """``add_tag`` as a machine-output key: ``addTag``."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def shard_of(edge: Edge, count: int) -> int:
    """The shard (0..count-1) an edge belongs to: a stable hash of its key."""
    digest = hashlib.sha256(edge.key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def _reference(repository: str, *, tag: str | None = None, digest: str | None = None) -> Reference:
    text = repository + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return Reference.parse(text)


class _References:
    """``_reference`` with each repository and digest parsed once, not once per edge.

    A plan of 50,000 edges names a few hundred repositories: parsing ``repository:tag`` whole
    for every request was a tenth of the plan's CPU. Anything the fast path does not accept
    goes through ``_reference``, so errors read as before.
    """

    def __init__(self) -> None:
        self._bases: dict[str, Reference | None] = {}
        self._digests: dict[str, Digest] = {}

    def __call__(
        self, repository: str, *, tag: str | None = None, digest: str | None = None
    ) -> Reference:
        try:
            base = self._bases[repository]
        except KeyError:
            base = self._bases[repository] = _base(repository)
        if base is None or (tag and not valid_tag(tag)):
            return _reference(repository, tag=tag, digest=digest)
        parsed: Digest | None = None
        if digest:
            parsed = self._digests.get(digest)
            if parsed is None:
                try:
                    parsed = self._digests[digest] = Digest.parse(digest)
                except ImgctlError:
                    return _reference(repository, tag=tag, digest=digest)
        return Reference(base.registry, base.repository, tag or None, parsed)


def _base(repository: str) -> Reference | None:
    """``repository`` parsed, or None when it does not parse as a bare repository."""
    try:
        base = Reference.parse(repository)
    except ImgctlError:
        return None
    return base if base.tag is None and base.digest is None else None


@dataclass(frozen=True, slots=True)
class EdgeAction:
    """What an edge needs; ``current`` is the digest a moving tag points at now."""

    edge: Edge
    action: str
    current: str | None = None
    error: str | None = None  # the destination or source could not be read
    referrers: tuple[ReferrerCopy, ...] = ()  # with the status a copy would give them

    @property
    def pending_referrers(self) -> list[ReferrerCopy]:
        """Referrers the destination lacks: a copy would write them (copy or merge)."""
        return [r for r in self.referrers if r.status in ("copied", "merged")]

    def referrer_lines(self) -> list[str]:
        """One line per referrer that is not already at the destination, for text output."""
        return [
            f"    referrer {_REFERRER_ACTIONS.get(r.status, r.status):5} {r.label} ({r.kind})"
            + (f": {r.reason}" if r.reason and r.status == "skipped" else "")
            for r in self.referrers
            if r.status != "unchanged"
        ]

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
        if self.referrers:
            out["referrers"] = [
                {
                    **r.as_dict(),
                    "action": _REFERRER_ACTIONS.get(r.status, r.status),
                }
                for r in self.referrers
            ]
        return out


@dataclass
class Plan:
    """Every edge with its action; ``requests`` counts what reading the registries cost."""

    actions: list[EdgeAction]
    requests: int = 0
    allow_tag_moves: bool = False
    referrers: ReferrerSelection = "none"  # what execute copies along with each image

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
        """The edges ``execute`` acts on (present ones too when referrers are missing)."""
        wanted = {"copy", "add_tag"} | ({"tag_move"} if self.allow_tag_moves else set())
        return [
            a
            for a in self.actions
            if not a.error
            and (a.action in wanted or (a.action == "present" and a.pending_referrers))
        ]

    def summary(self) -> dict[str, int]:
        """Edges per action, and the referrers to copy or merge."""
        counts = {action: self.count(action) for action in ACTIONS}
        counts["edges"] = len(self.actions)
        counts["unreadable"] = len(self.unreadable)
        counts["referrers"] = sum(len(a.pending_referrers) for a in self.actions)
        return counts

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable plan (``--output json``)."""
        return {
            # Machine output's keys are camelCase (add_tag -> addTag); the actions' values
            # keep their names.
            "summary": {_camel(key): count for key, count in self.summary().items()},
            "allowTagMoves": self.allow_tag_moves,
            "referrers": self.referrers,
            "requests": self.requests,
            "edges": [a.as_dict() for a in self.actions],
        }


class _Reader:
    """Registry reads shared by all edges, each done once."""

    def __init__(self, client: RegistryClient, concurrency: int, refs: _References) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(concurrency)
        self.refs = refs
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
                ref = self.refs(repository, digest=identifier)
            else:
                ref = self.refs(repository, tag=identifier)
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
    referrers: ReferrerSelection = "all",
) -> Plan:
    """Classify every edge, and find the referrers each would copy; writes nothing."""
    before = client.stats.requests
    refs = _References()
    reader = _Reader(client, concurrency, refs)
    actions = list(await asyncio.gather(*(_classify(reader, edge) for edge in edges)))
    if referrers != "none":
        actions = await _with_referrers(client, actions, referrers, concurrency, refs)
    return Plan(actions, client.stats.requests - before, allow_tag_moves, referrers)


async def _with_referrers(
    client: RegistryClient,
    actions: list[EdgeAction],
    selection: ReferrerSelection,
    concurrency: int,
    refs: _References,
) -> list[EdgeAction]:
    """The actions with the referrers of their source digest (lost edges have none)."""
    readable = [i for i, a in enumerate(actions) if a.action != "lost" and not a.error]
    pairs = [
        (_source(actions[i].edge, refs), _destination(actions[i].edge, refs)) for i in readable
    ]
    answers = await plan_referrers(client, pairs, selection, concurrency=concurrency)
    out = list(actions)
    for i, answer in zip(readable, answers, strict=True):
        if isinstance(answer, ImgctlError):
            out[i] = replace(actions[i], error=f"referrers: {answer}")
        elif answer:  # no referrers: the action already says so (referrers=())
            out[i] = replace(actions[i], referrers=tuple(answer))
    return out


def _source(edge: Edge, refs: Callable[..., Reference] = _reference) -> Reference:
    return refs(edge.source_repository, digest=edge.digest)


def _destination(edge: Edge, refs: Callable[..., Reference] = _reference) -> Reference:
    if edge.tag is None:
        return refs(edge.destination_repository, digest=edge.digest)
    return refs(edge.destination_repository, tag=edge.tag)


@dataclass(frozen=True, slots=True)
class EdgeOutcome:
    """What executing one edge did."""

    edge: Edge
    action: str
    ok: bool
    error: str | None = None
    bytes_copied: int = 0
    referrers: tuple[ReferrerCopy, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out: dict[str, Any] = {
            "destination": self.edge.destination,
            "digest": self.edge.digest,
            "action": self.action,
            "ok": self.ok,
            "error": self.error,
            "bytesCopied": self.bytes_copied,
        }
        if self.referrers:
            out["referrers"] = [r.as_dict() for r in self.referrers]
        return out


async def execute(
    client: RegistryClient,
    plan: Plan,
    *,
    concurrency: int = 8,
    progress: CopyProgress | None = None,
) -> list[EdgeOutcome]:
    """Do the plan's copies, tag additions (and allowed tag moves); failures are per edge.

    Edges the plan found referrers to copy for are copied from their source with those
    referrers; the others without looking for referrers again.
    """
    plain: list[tuple[EdgeAction, Reference, Reference]] = []
    signed: list[tuple[EdgeAction, Reference, Reference]] = []
    for action in plan.work():
        edge = action.edge
        if action.pending_referrers:
            signed.append((action, _source(edge), _destination(edge)))
        elif action.action == "add_tag":
            # The bytes are already in the destination: tag them from there, not the source.
            source = _reference(edge.destination_repository, digest=edge.digest)
            plain.append((action, source, _destination(edge)))
        else:
            plain.append((action, _source(edge), _destination(edge)))
    outcomes: dict[int, EdgeOutcome] = {}
    batches: list[tuple[list[tuple[EdgeAction, Reference, Reference]], ReferrerSelection]] = [
        (plain, "none"),
        (signed, plan.referrers),
    ]
    for batch, selection in batches:
        if not batch:
            continue
        options = CopyOptions(image_concurrency=concurrency, referrers=selection)
        results = await copy_images(client, [(s, d) for _, s, d in batch], options, progress)
        for (action, _, _), result in zip(batch, results, strict=True):
            outcomes[id(action)] = _outcome(action, result)
    return [outcomes[id(a)] for a in plan.work() if id(a) in outcomes]


def _outcome(action: EdgeAction, result: CopyResult) -> EdgeOutcome:
    if result.error is None and str(result.digest) != action.edge.digest:
        error = f"copied {result.digest}, expected {action.edge.digest}"
        return EdgeOutcome(action.edge, action.action, False, error)
    return EdgeOutcome(
        action.edge,
        action.action,
        result.error is None,
        str(result.error) if result.error else None,
        result.bytes_copied,
        tuple(result.referrers),
    )


def select_shard(edges: Iterable[Edge], index: int, count: int) -> list[Edge]:
    """The edges of shard ``index`` of ``count``."""
    return [edge for edge in edges if shard_of(edge, count) == index]
