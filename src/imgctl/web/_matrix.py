"""The release matrix at ``/`` and its JSON at ``/api/releases`` (issue 20 item 1).

One row per repository (the path ``imgctl promote`` names, without the environment's registry),
one column per environment in pipeline order (:mod:`._context`), each cell what the catalog
says is there: the entry whose tags still name it (the most recently promoted such entry; if no
entry of the repository there has a tag left, the most recent one), its tags, short digest,
who promoted it and when, signed / attested as the promotion left it. Environments nothing was
promoted into (where CI pushes) have no column.

Drift: a cell whose digest is not the one of the previous environment (in pipeline order,
among the environments the caller may read that have entries) is marked. "prod is N versions
behind staging": N counts the digests promoted into staging after the one prod has got there
(by their ``promoted_at`` in staging); when prod's digest never was in staging, after prod's own
promotion. N = 0 (prod holds something staging never had, or newer): "prod differs from
staging".

Filters (all in the URL): ``name`` (part of the repository, any case), ``environment``
(repeatable: only those columns, and the repositories present in one of them), ``promoter``
(part of who promoted a shown cell, any case), ``sort`` (:data:`SORTS`), ``page`` and ``size``
(1 to :data:`MAX_PAGE_SIZE`, default :data:`PAGE_SIZE`). Paging is done on the server.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imgctl._internal.bounds import MAX_EMAIL, MAX_ENVIRONMENT, MAX_NAME

from ._access import Viewer
from ._context import pipeline_order
from ._render import BadFilter, CurrentViewer, Web, rfc3339, short_digest

if TYPE_CHECKING:
    from imgctl.store import CatalogImage

__all__ = ["MAX_PAGE_SIZE", "PAGE_SIZE", "SORTS", "Matrix", "register"]

PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 500
MAX_ENVIRONMENT_FILTERS: Final = 32
SORTS: Final = {
    "name": "repository, A to Z",
    "name_desc": "repository, Z to A",
    "newest": "most recent promotion first",
    "oldest": "least recent promotion first",
    "drift": "most versions behind first",
}
FILTERS: Final = ("name", "environment", "promoter", "sort", "page", "size")


# --------------------------------------------------------------------------- the JSON's schema


class DriftOut(BaseModel):
    """How a cell differs from the previous environment's."""

    previous: str = Field(description="The previous environment in pipeline order")
    behind: int = Field(
        description="Digests promoted into the previous environment after this cell's "
        "(0: it holds something the previous one never had, or newer)"
    )
    message: str = Field(description="'prod is 2 versions behind staging'")


class CellOut(BaseModel):
    """What one environment holds of one repository (the catalog's entry)."""

    name: str = Field(description="The catalog entry's repository, REGISTRY/PATH")
    digest: str = Field(description="The entry's id: the digest promoted")
    tags: list[str] = Field(description="Tags of the digest there (may be empty)")
    promoted_by: str | None = Field(None, description="Who promoted it (email, else subject)")
    promoted_at: str | None = Field(None, description="When, RFC 3339 (UTC)")
    signed: bool | None = Field(None, description="Signed by the server's key; null: unknown")
    attested: bool | None = Field(None, description="Attested by the server; null: unknown")
    source: str | None = Field(None, description="What was promoted, REGISTRY/REPO:TAG@DIGEST")
    others: int = Field(0, description="Other entries (older digests) of the repository there")
    drift: DriftOut | None = Field(None, description="Set when it differs from the previous")


class RowOut(BaseModel):
    """One repository."""

    repository: str = Field(description="The path imgctl promote names (no registry)")
    cells: dict[str, CellOut | None] = Field(description="Environment -> its cell (null: none)")


class ReleasesOut(BaseModel):
    """``GET /api/releases``: one page of the release matrix."""

    environments: list[str] = Field(description="The columns, in pipeline order")
    pipeline: list[str] = Field(description="Every environment the caller may read, in order")
    filters: dict[str, Any] = Field(description="The filters applied, as given")
    page: int
    size: int
    total: int = Field(description="Repositories matching the filters")
    pages: int
    rows: list[RowOut]


class ErrorOut(BaseModel):
    """An error: ``{"error": {"code", "message"}}``."""

    error: dict[str, str]


# --------------------------------------------------------------------------- building it


@dataclass
class Filters:
    """The matrix's query, checked."""

    name: str = ""
    environments: tuple[str, ...] = ()
    promoter: str = ""
    sort: str = "name"
    page: int = 1
    size: int = PAGE_SIZE

    def as_query(self) -> dict[str, Any]:
        """The filters as URL parameters (defaults left out)."""
        values: dict[str, Any] = {
            "name": self.name,
            "environment": list(self.environments),
            "promoter": self.promoter,
            "sort": "" if self.sort == "name" else self.sort,
            "size": "" if self.size == PAGE_SIZE else self.size,
        }
        return values

    def as_json(self) -> dict[str, Any]:
        """The filters as the API echoes them."""
        return {
            "name": self.name or None,
            "environment": list(self.environments),
            "promoter": self.promoter or None,
            "sort": self.sort,
        }


def parse_filters(request: Request) -> Filters:
    """The query of ``request`` as :class:`Filters`; BadFilter says what is wrong."""
    params = request.query_params
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise BadFilter(
            f"unknown filter {unknown[0]!r}: the filters are {', '.join(FILTERS)}",
            code="unknown_filter",
        )
    for key in FILTERS:
        if key != "environment" and len(params.getlist(key)) > 1:
            raise BadFilter(f"{key} given {len(params.getlist(key))} times: give it once")
    name = params.get("name", "").strip()
    if len(name) > MAX_NAME:
        raise BadFilter(f"name is longer than {MAX_NAME} characters")
    promoter = params.get("promoter", "").strip()
    if len(promoter) > MAX_EMAIL:
        raise BadFilter(f"promoter is longer than {MAX_EMAIL} characters")
    environments = tuple(
        dict.fromkeys(e.strip().lower() for e in params.getlist("environment") if e.strip())
    )
    if len(environments) > MAX_ENVIRONMENT_FILTERS:
        raise BadFilter(f"at most {MAX_ENVIRONMENT_FILTERS} environment filters")
    for environment in environments:
        if len(environment) > MAX_ENVIRONMENT:
            raise BadFilter(f"environment is longer than {MAX_ENVIRONMENT} characters")
    sort = params.get("sort", "").strip() or "name"
    if sort not in SORTS:
        raise BadFilter(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    page = _integer(params.get("page"), "page", 1, 1, 1_000_000)
    size = _integer(params.get("size"), "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    return Filters(name, environments, promoter, sort, page, size)


def _integer(raw: str | None, key: str, default: int, low: int, high: int) -> int:
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadFilter(f"{key} must be a whole number from {low} to {high}, got {raw[:40]!r}")
    return int(text)


@dataclass
class Cell:
    """One environment's entries of one repository: the current one first."""

    entries: list[CatalogImage]
    drift: DriftOut | None = None

    @property
    def current(self) -> CatalogImage:
        """The entry the cell shows."""
        return self.entries[0]

    @property
    def when(self) -> datetime:
        """When the current entry was promoted (else last written)."""
        return _when(self.current)


@dataclass
class Row:
    """One repository across the environments."""

    repository: str
    cells: dict[str, Cell] = field(default_factory=dict)

    def latest(self, environments: Iterable[str]) -> datetime | None:
        """The most recent promotion among ``environments``' cells."""
        times = [self.cells[e].when for e in environments if e in self.cells]
        return max(times) if times else None

    def behind(self, environments: Iterable[str]) -> int:
        """The most versions any of ``environments``' cells is behind its previous one."""
        found = [
            drift.behind
            for e in environments
            if e in self.cells and (drift := self.cells[e].drift) is not None
        ]
        return max(found, default=-1)


@dataclass
class Matrix:
    """One page of the release matrix, ready for the template and the JSON."""

    filters: Filters
    pipeline: list[str]
    environments: list[str]
    rows: list[Row]
    total: int

    @property
    def pages(self) -> int:
        """How many pages the filtered repositories fill (at least 1)."""
        return max(1, math.ceil(self.total / self.filters.size))

    def as_json(self) -> dict[str, Any]:
        """The ``/api/releases`` answer (ReleasesOut)."""
        return {
            "environments": self.environments,
            "pipeline": self.pipeline,
            "filters": self.filters.as_json(),
            "page": self.filters.page,
            "size": self.filters.size,
            "total": self.total,
            "pages": self.pages,
            "rows": [
                {
                    "repository": row.repository,
                    "cells": {
                        environment: _cell_json(row.cells.get(environment))
                        for environment in self.environments
                    },
                }
                for row in self.rows
            ],
        }


def _cell_json(cell: Cell | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    entry = cell.current
    return {
        "name": entry.name,
        "digest": entry.id,
        "tags": list(entry.tags),
        "promoted_by": entry.promoted_by,
        "promoted_at": rfc3339(entry.promoted_at) or None,
        "signed": entry.signed,
        "attested": entry.attested,
        "source": entry.source,
        "others": len(cell.entries) - 1,
        "drift": cell.drift.model_dump() if cell.drift is not None else None,
    }


def _when(entry: CatalogImage) -> datetime:
    return entry.promoted_at or entry.updated_at


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def drift_of(environment: str, cell: Cell, previous: str, before: Cell | None) -> DriftOut | None:
    """How ``cell`` differs from ``before`` (the previous environment's); None: it does not."""
    if before is None or before.current.id == cell.current.id:
        return None
    there = {entry.id: _when(entry) for entry in before.entries}
    since = there.get(cell.current.id, cell.when)
    behind = sum(1 for id, when in there.items() if id != cell.current.id and when > since)
    if behind:
        message = f"{environment} is {_plural(behind, 'version')} behind {previous}"
    else:
        message = f"{environment} differs from {previous}"
    return DriftOut(previous=previous, behind=behind, message=message)


@dataclass
class Snapshot:
    """The catalog's promoted entries grouped for the matrix, kept until the catalog changes.

    ``cells``: repository -> environment -> entries, the current one first; ``edges``: the
    (source environment, environment) pairs the entries' sources show.
    """

    version: object
    environments: set[str]
    edges: set[tuple[str, str]]
    cells: dict[str, dict[str, list[CatalogImage]]]


_SNAPSHOT: Final = "matrix.snapshot"
_LOCK: Final = "matrix.lock"


async def snapshot(web: Web) -> Snapshot:
    """The catalog as the matrix needs it, read again only when its version changed.

    Reading and grouping 11,500 entries takes about half a second on this project's machine;
    the version check about a millisecond, so a page waits for the database only after a write.
    """
    context = web.context
    catalog = context.catalog
    if catalog is None:
        return Snapshot(None, set(), set(), {})
    lock = context.extra.setdefault(_LOCK, asyncio.Lock())
    assert isinstance(lock, asyncio.Lock)
    async with lock:
        version = await catalog.version()
        kept = context.extra.get(_SNAPSHOT)
        if isinstance(kept, Snapshot) and kept.version == version:
            return kept
        entries = [e for e in await catalog.list(sort="updated_at") if e.environment]
        fresh = group(web, version, entries)
        context.extra[_SNAPSHOT] = fresh
        return fresh


async def environment_order(web: Web) -> list[str]:
    """Every environment in pipeline order: IMGCTL_PIPELINE, else along the catalog's promotions.

    Every page reads it here, from the same kept snapshot, so every page lets a caller read the
    same environments (:meth:`Viewer.readable`) and names the same next environment.
    """
    kept = await snapshot(web)
    names = set(web.context.configured()) | kept.environments
    return pipeline_order(names, web.context.pipeline, kept.edges)


def group(web: Web, version: object, entries: Sequence[CatalogImage]) -> Snapshot:
    """Group ``entries`` by repository and environment; read the promotions' edges."""
    context = web.context
    owner_of = {entry.name: entry.environment for entry in entries}
    sources: dict[str, str | None] = {}
    paths: dict[tuple[str, str], str] = {}
    edges: set[tuple[str, str]] = set()
    cells: dict[str, dict[str, list[CatalogImage]]] = {}
    for entry in entries:
        if entry.source:
            repository = _repository_of(entry.source)
            if repository not in sources:
                sources[repository] = context.environment_of(repository) or owner_of.get(repository)
            source = sources[repository]
            if source is not None:
                edges.add((source, entry.environment))
        key = (entry.name, entry.environment)
        path = paths.get(key)
        if path is None:
            path = paths[key] = context.repository_path(entry.name, entry.environment)
        cells.setdefault(path, {}).setdefault(entry.environment, []).append(entry)
    for by_environment in cells.values():
        for listed in by_environment.values():
            # The entry its tags still name, most recently promoted first.
            listed.sort(key=lambda e: (bool(e.tags), _when(e)), reverse=True)
    return Snapshot(version, {entry.environment for entry in entries}, edges, cells)


def _repository_of(source: str) -> str:
    """REGISTRY/REPO of a REGISTRY/REPO:TAG@DIGEST source (the server wrote it: no parsing)."""
    name = source.partition("@")[0]
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.partition(':')[0]}" if slash else name


async def build_matrix(web: Web, viewer: Viewer, filters: Filters) -> Matrix:
    """Make the page ``filters`` ask for; BadFilter for what cannot be."""
    kept = await snapshot(web)
    order = await environment_order(web)
    readable = viewer.readable(order)
    allowed = set(readable)
    for environment in filters.environments:
        if environment not in allowed:
            raise BadFilter(
                f"no environment {environment!r} here: environments are "
                f"{', '.join(readable) or 'none you may read'}"
            )

    rows: list[Row] = []
    present: set[str] = set()
    for repository, by_environment in kept.cells.items():
        cells = {e: Cell(entries) for e, entries in by_environment.items() if e in allowed}
        if cells:
            rows.append(Row(repository, cells))
            present.update(cells)
    filled = [e for e in readable if e in present]
    columns = [e for e in readable if e in filters.environments] if filters.environments else filled
    selected = [row for row in rows if _matches(row, filters, columns)]
    if filters.sort == "drift":
        for row in selected:
            _drift(row, filled)
    _sort(selected, filters.sort, columns)
    start = (filters.page - 1) * filters.size
    page_rows = selected[start : start + filters.size]
    if filters.sort != "drift":
        for row in page_rows:
            _drift(row, filled)
    return Matrix(filters, readable, columns, page_rows, len(selected))


def _drift(row: Row, filled: Sequence[str]) -> None:
    """Mark the cells of ``row`` that differ from the previous environment of ``filled``."""
    for index, environment in enumerate(filled):
        if index and environment in row.cells:
            previous = filled[index - 1]
            cell = row.cells[environment]
            cell.drift = drift_of(environment, cell, previous, row.cells.get(previous))


def _matches(row: Row, filters: Filters, columns: Sequence[str]) -> bool:
    if not any(environment in row.cells for environment in columns):
        return False
    if filters.name and filters.name.lower() not in row.repository.lower():
        return False
    if filters.promoter:
        wanted = filters.promoter.lower()
        return any(
            wanted in (row.cells[e].current.promoted_by or "").lower()
            for e in columns
            if e in row.cells
        )
    return True


def _sort(rows: list[Row], sort: str, columns: Sequence[str]) -> None:
    rows.sort(key=lambda row: row.repository)
    if sort == "name_desc":
        rows.reverse()
    elif sort in ("newest", "oldest"):

        def key(row: Row) -> float:
            latest = row.latest(columns)
            return latest.timestamp() if latest is not None else -math.inf

        rows.sort(key=key, reverse=sort == "newest")
    elif sort == "drift":
        rows.sort(key=lambda row: row.behind(columns), reverse=True)


# --------------------------------------------------------------------------- routes


def register(router: APIRouter, web: Web) -> None:
    """Add ``/`` (the page) and ``/api/releases`` (its JSON)."""

    @router.get("/", include_in_schema=False)
    async def releases_page(request: Request, viewer: CurrentViewer) -> Response:
        filters = parse_filters(request)
        matrix = await build_matrix(web, viewer, filters)
        return web.render(
            request,
            "matrix.html",
            {
                "heading": "Releases",
                "matrix": matrix,
                "filters": filters,
                "query_values": filters.as_query(),
                "sorts": SORTS,
                "short_digest": short_digest,
            },
            viewer=viewer,
        )

    @router.get(
        "/api/releases",
        summary="The release matrix: what each environment holds of each repository",
        response_model=None,
        responses={
            200: {"model": ReleasesOut},
            400: {"model": ErrorOut},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
        },
    )
    async def releases_api(
        request: Request,
        viewer: CurrentViewer,
        name: Annotated[str | None, Query(description="Part of the repository, any case")] = None,
        environment: Annotated[
            list[str] | None, Query(description="Only these environments (repeatable)")
        ] = None,
        promoter: Annotated[
            str | None, Query(description="Part of who promoted a shown cell, any case")
        ] = None,
        sort: Annotated[str | None, Query(description=", ".join(SORTS))] = None,
        page: Annotated[str | None, Query(description="Page number, from 1")] = None,
        size: Annotated[
            str | None, Query(description=f"Rows per page, 1 to {MAX_PAGE_SIZE} (100)")
        ] = None,
    ) -> Response:
        # The parameters above document the query; parse_filters reads and checks it.
        matrix = await build_matrix(web, viewer, parse_filters(request))
        return JSONResponse(matrix.as_json())
