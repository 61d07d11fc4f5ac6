"""What the pages read: the stores, the configured environments and their pipeline order.

The pipeline order (the matrix's columns, "behind" in drift marks, lead times) is, first,
``IMGCTL_PIPELINE`` (``dev,int,prod``: names in order; configured environments it leaves out come
after it, alphabetically). Without it the order is read from the promotions the catalog records:
an entry's ``source`` names the repository it was promoted from, which belongs to an environment
(by the configured registries, else by the catalog's own names), so every promotion is an edge
"source environment before destination environment"; environments are ordered along those edges
(ties, and environments no promotion links, alphabetically). No promotion yet: alphabetical.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from imgctl._internal.bounds import MAX_ENVIRONMENT
from imgctl.errors import UsageError

if TYPE_CHECKING:
    from imgctl.promotion.environments import Environments, Policy
    from imgctl.scan.scanner import Scanner
    from imgctl.store import AuditStore, CatalogStore, ScanStore

__all__ = ["PIPELINE_ENV", "WebContext", "pipeline_order", "read_pipeline"]

PIPELINE_ENV: Final = "IMGCTL_PIPELINE"


@dataclass
class WebContext:
    """Everything a page may read; what a process does not have is None.

    ``imgctl server`` gives all of it (``scanner`` is a callable: the scanner starts after the
    HTTP side is built); ``imgctl catalog serve`` has the catalog and audit stores of its
    database, and the environments only when ``IMGCTL_REGISTRY_*`` is set there too.
    """

    catalog: CatalogStore | None = None
    audit: AuditStore | None = None
    environments: Environments | None = None
    policy: Policy | None = None
    # IMGCTL_PIPELINE, read by read_pipeline(); empty: derived from the promotions.
    pipeline: tuple[str, ...] = ()
    default_source: str | None = None
    scanner: Callable[[], Scanner | None] | None = None
    scan_store: ScanStore | None = None
    # The gRPC address a CLI command shown on a page should name (--server), if known.
    grpc_address: str | None = None
    title: str = "imgctl"
    extra: dict[str, object] = field(default_factory=dict)

    def configured(self) -> list[str]:
        """The configured environments' names (sorted), none for a catalog without them."""
        return self.environments.names() if self.environments is not None else []

    def repository_path(self, name: str, environment: str) -> str:
        """``name`` (REGISTRY/PATH of a catalog entry) without its environment's registry.

        The repository as ``imgctl promote`` names it: the configured registry and prefix of
        ``environment`` taken off; a name elsewhere (or no configuration): its first component
        (the registry host) taken off.
        """
        env = self.environments.get(environment) if self.environments is not None else None
        if env is not None and env.registry:
            base = env.describe() + "/"
            if name.startswith(base):
                return name[len(base) :]
        host, slash, path = name.partition("/")
        return path if slash and ("." in host or ":" in host or host == "localhost") else name

    def environment_of(self, repository: str) -> str | None:
        """The configured environment whose registry (and prefix) holds ``repository``."""
        if self.environments is None:
            return None
        best: tuple[int, str] | None = None
        for env in self.environments:
            if not env.registry:
                continue
            base = env.describe() + "/"
            if repository.startswith(base) and (best is None or len(base) > best[0]):
                best = (len(base), env.name)
        return None if best is None else best[1]


def read_pipeline(environ: Mapping[str, str], configured: Iterable[str] = ()) -> tuple[str, ...]:
    """``IMGCTL_PIPELINE`` as names; UsageError (before serving) for a bad or unknown name."""
    raw = environ.get(PIPELINE_ENV, "").strip()
    if not raw:
        return ()
    names = [part.strip().lower() for part in raw.split(",")]
    known = set(configured)
    seen: set[str] = set()
    for name in names:
        if not name or len(name) > MAX_ENVIRONMENT:
            raise UsageError(
                f"{PIPELINE_ENV}={raw!r}: empty or over-long environment name",
                hint="name the environments in order, comma-separated: dev,int,prod",
            )
        if known and name not in known:
            raise UsageError(
                f"{PIPELINE_ENV}={raw!r}: {name!r} is not a configured environment",
                hint=f"configured: {', '.join(sorted(known))}",
            )
        if name in seen:
            raise UsageError(f"{PIPELINE_ENV}={raw!r} names {name!r} twice")
        seen.add(name)
    return tuple(names)


def pipeline_order(
    names: Iterable[str], explicit: tuple[str, ...], edges: Iterable[tuple[str, str]] = ()
) -> list[str]:
    """``names`` in pipeline order: ``explicit`` first, else along ``edges`` (source, dest).

    Kahn's topological sort taking the alphabetically first free environment each time; a cycle
    (promotions both ways) is broken by taking the alphabetically first environment left.
    """
    wanted = sorted(set(names))
    if explicit:
        first = [name for name in explicit if name in wanted]
        return first + [name for name in wanted if name not in first]
    successors: dict[str, set[str]] = {name: set() for name in wanted}
    incoming: dict[str, int] = dict.fromkeys(wanted, 0)
    for source, destination in edges:
        if source == destination or source not in successors or destination not in successors:
            continue
        if destination not in successors[source]:
            successors[source].add(destination)
            incoming[destination] += 1
    ordered: list[str] = []
    ready = [name for name in wanted if incoming[name] == 0]
    heapq.heapify(ready)
    left = set(wanted)
    while left:
        if not ready:  # a cycle: break it
            heapq.heappush(ready, min(left))
            incoming[ready[0]] = 0
        name = heapq.heappop(ready)
        if name not in left:
            continue
        left.discard(name)
        ordered.append(name)
        for successor in sorted(successors[name]):
            if successor in left:
                incoming[successor] -= 1
                if incoming[successor] == 0:
                    heapq.heappush(ready, successor)
    return ordered
