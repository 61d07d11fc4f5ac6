"""The audit trail at ``/audit``, its JSON at ``/api/audit`` and downloads (issue 20 item 3).

Every request the server answered, newest first: who, what, from where to where, how it ended.
Filters (all in the URL): ``user`` (subject or email, exact), ``environment`` (source or
destination), ``result`` (:data:`imgctl.store.RESULTS`), ``since`` (inclusive) and ``until``
(exclusive) as RFC 3339 times; ``limit`` (1 to :data:`imgctl.store.MAX_PAGE`, default
:data:`imgctl.store.DEFAULT_PAGE`) and ``cursor`` (a previous answer's ``next_cursor``) page
through them. ``/api/audit.csv`` and ``/api/audit.jsonl`` stream every matching row up to
:data:`imgctl.store.MAX_EXPORT`, newest first.

A caller reads only rows whose every environment they may read (:meth:`Viewer.readable`); rows
naming no environment (sign-in checks, requests refused before one was known) only when they
may read every environment. An environment filter naming another one is a 400, worded like an
unknown name.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import QueryParams

from imgctl._internal.bounds import MAX_ENVIRONMENT, MAX_SUBJECT
from imgctl.errors import StoreError, UsageError
from imgctl.store import (
    DEFAULT_PAGE,
    MAX_EXPORT,
    MAX_PAGE,
    RESULTS,
    AuditPage,
    AuditQuery,
    AuditRecord,
    AuditStore,
)

from ._access import Viewer
from ._matrix import environment_order
from ._render import BadFilter, CurrentViewer, Web, rfc3339

__all__ = ["CSV_COLUMNS", "EXPORT_FILTERS", "FILTERS", "AuditFilters", "csv_cell", "register"]

logger = logging.getLogger(__name__)

FILTERS: Final = ("user", "environment", "result", "since", "until", "limit", "cursor")
EXPORT_FILTERS: Final = ("user", "environment", "result", "since", "until")
CSV_COLUMNS: Final = tuple(
    AuditRecord(request_id="", time=datetime.now(UTC), action="", result="").as_dict()
)
"""The columns of the CSV download, and the keys of each event: AuditRecord's fields."""

_RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
# What an <input type="datetime-local"> sends: no offset; the page's labels say UTC.
_FORM_TIME: Final = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?")
# Cells a spreadsheet would run as a formula (OWASP's list): shown as text with a leading '.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_UNAVAILABLE: Final = "the audit trail cannot be read now: the database is unreachable"
_CHUNK_ROWS: Final = 200


# --------------------------------------------------------------------------- the JSON's schema


class AuditEventOut(BaseModel):
    """One audit event: one request the server answered, and how."""

    request_id: str = Field(description="The request's id (x-request-id, or the server's)")
    time: str = Field(description="When it was answered, RFC 3339 (UTC)")
    action: str = Field(description="promote or auth_check")
    result: str = Field(description="succeeded, denied, failed or invalid")
    subject: str | None = Field(None, description="The caller's OIDC subject")
    email: str | None = Field(None, description="The caller's email")
    groups: list[str] = Field(description="The caller's groups")
    kind: str | None = Field(None, description="image or spa (promotions)")
    reference: str | None = Field(None, description="What the caller asked to promote")
    source_env: str | None = Field(None, description="Source environment")
    destination_env: str | None = Field(None, description="Destination environment")
    source_ref: str | None = Field(None, description="The source, REGISTRY/REPO:TAG@DIGEST")
    destination_ref: str | None = Field(None, description="Where it was copied to")
    digest: str | None = Field(None, description="The digest promoted")
    bytes_copied: int | None = Field(None, description="Bytes copied")
    duration_ms: int | None = Field(None, description="How long the request took")
    error_code: str | None = Field(None, description="gRPC status name of a refusal/failure")
    error: str | None = Field(None, description="Why it was refused or failed")
    peer: str | None = Field(None, description="The caller's address")
    signed: bool | None = Field(None, description="Signed with the server's key; null: no key")
    signature_key: str | None = Field(None, description="The signing key's id")
    signature_error: str | None = Field(None, description="Why it was not signed")
    attested: bool | None = Field(None, description="Attested by the server; null: no key")
    attestation_error: str | None = Field(None, description="Why it was not attested")


class AuditFiltersOut(BaseModel):
    """The filters an answer applied (null: not given)."""

    user: str | None
    environment: str | None
    result: str | None
    since: str | None = Field(description="RFC 3339 (UTC), inclusive")
    until: str | None = Field(description="RFC 3339 (UTC), exclusive")


class AuditPageOut(BaseModel):
    """``GET /api/audit``: one page of audit events, newest first."""

    events: list[AuditEventOut]
    next_cursor: str | None = Field(
        description="Pass as cursor= for the next (older) page; null: this is the last"
    )
    limit: int = Field(description="The most events a page holds")
    filters: AuditFiltersOut
    environments: list[str] = Field(
        description="The environments the caller may read, in pipeline order"
    )


class ErrorOut(BaseModel):
    """An error: ``{"error": {"code", "message"}}``."""

    error: dict[str, str]


# The API's parameters as the OpenAPI document shows them; parse_filters checks them all.
UserParam = Annotated[
    str | None,
    Query(description=f"The caller's subject or email, exactly (at most {MAX_SUBJECT} characters)"),
]
EnvironmentParam = Annotated[
    str | None,
    Query(
        description="An environment, as source or destination (one you may read)",
    ),
]
ResultParam = Annotated[str | None, Query(description="One of: " + ", ".join(sorted(RESULTS)))]
SinceParam = Annotated[
    str | None,
    Query(description="RFC 3339 time with an offset, inclusive: 2025-03-01T12:00:00Z"),
]
UntilParam = Annotated[str | None, Query(description="RFC 3339 time with an offset, exclusive")]
LimitParam = Annotated[
    int | None,
    Query(description=f"Events per page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})"),
]
CursorParam = Annotated[str | None, Query(description="The next_cursor of the previous page")]


# --------------------------------------------------------------------------- the query


@dataclass(frozen=True)
class AuditFilters:
    """The audit trail's query, checked."""

    user: str | None = None
    environment: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_PAGE
    cursor: str | None = None

    def query(self, readable: frozenset[str] | None) -> AuditQuery:
        """The store's query, limited to ``readable`` environments (None: every row)."""
        return AuditQuery(
            user=self.user,
            environment=self.environment,
            result=self.result,
            since=self.since,
            until=self.until,
            readable=readable,
        )

    def as_query(self, *, paging: bool = True) -> dict[str, Any]:
        """The filters as URL parameters (defaults and empty ones left out)."""
        values: dict[str, Any] = {
            "user": self.user,
            "environment": self.environment,
            "result": self.result,
            "since": rfc3339(self.since) or None,
            "until": rfc3339(self.until) or None,
        }
        if paging:
            values["limit"] = None if self.limit == DEFAULT_PAGE else self.limit
            values["cursor"] = self.cursor
        return values

    def as_json(self) -> dict[str, str | None]:
        """The filters as the API echoes them."""
        return {
            "user": self.user,
            "environment": self.environment,
            "result": self.result,
            "since": rfc3339(self.since) or None,
            "until": rfc3339(self.until) or None,
        }

    @property
    def active(self) -> bool:
        """Whether any filter (not paging) is set."""
        return any(value is not None for value in self.as_json().values())


def parse_filters(params: QueryParams, *, allowed: tuple[str, ...], form: bool) -> AuditFilters:
    """The query ``params`` as :class:`AuditFilters`; BadFilter names the problem.

    ``form``: the page's form, whose time fields (``datetime-local``) carry no offset and are
    read as UTC; the API wants RFC 3339 with an offset.
    """
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BadFilter(
            f"unknown parameter {unknown[0][:40]!r}: the parameters are {', '.join(allowed)}",
            code="unknown_filter",
        )
    for key in allowed:
        if len(params.getlist(key)) > 1:
            raise BadFilter(f"{key} given {len(params.getlist(key))} times: give it once")

    def text(key: str) -> str | None:
        value = params.get(key, "").strip()
        return value or None

    user = text("user")
    if user is not None and len(user) > MAX_SUBJECT:
        raise BadFilter(f"user is longer than {MAX_SUBJECT} characters")
    environment = text("environment")
    if environment is not None:
        environment = environment.lower()
        if len(environment) > MAX_ENVIRONMENT:
            raise BadFilter(f"environment is longer than {MAX_ENVIRONMENT} characters")
    result = text("result")
    if result is not None and result not in RESULTS:
        raise BadFilter(f"result must be one of {', '.join(sorted(RESULTS))}, got {result[:40]!r}")
    since = _time(text("since"), "since", form=form)
    until = _time(text("until"), "until", form=form)
    if since is not None and until is not None and since >= until:
        raise BadFilter(f"since ({rfc3339(since)}) must be before until ({rfc3339(until)})")
    limit = DEFAULT_PAGE
    raw_limit = text("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise BadFilter(
                f"limit must be a whole number from 1 to {MAX_PAGE}, got {raw_limit[:40]!r}"
            )
        limit = int(raw_limit)
    return AuditFilters(user, environment, result, since, until, limit, text("cursor"))


def _time(raw: str | None, key: str, *, form: bool) -> datetime | None:
    if raw is None:
        return None
    example = "e.g. 2025-03-01T12:00:00Z"
    match = _RFC3339.fullmatch(raw)
    if match is not None:
        date, clock, fraction, offset = match.groups()
        zone = "+00:00" if offset in ("Z", "z") else offset
    else:
        local = _FORM_TIME.fullmatch(raw) if form else None
        if local is None:
            raise BadFilter(
                f"{key} must be an RFC 3339 time with an offset ({example}), got {raw[:40]!r}"
            )
        date, minutes, seconds, fraction = local.groups()
        clock, zone = minutes + (seconds or ":00"), "+00:00"
    fraction = (fraction or "")[:7]  # a dot and at most microseconds
    try:
        value = datetime.fromisoformat(f"{date}T{clock}{fraction}{zone}")
    except ValueError:
        raise BadFilter(f"{key} is not a valid time ({example}), got {raw[:40]!r}") from None
    return value.astimezone(UTC)


async def _scope(web: Web, viewer: Viewer) -> tuple[list[str], frozenset[str] | None]:
    """The environments ``viewer`` may read (pipeline order), and the rows' limit (None: all)."""
    # The release matrix's reading of the catalog (kept until it changes), as the charts do:
    # every page lets a caller read the same environments.
    order = await environment_order(web)
    readable = viewer.readable(order)
    # Who may read every environment there is reads every row, those naming none included.
    if viewer.promotes_to is None or set(order) <= set(readable):
        return readable, None
    return readable, frozenset(readable)


def _check_environment(
    filters: AuditFilters, readable: list[str], limit: frozenset[str] | None
) -> None:
    # A caller who may read everything may look for any name the trail holds (an environment
    # refused as unknown, say); one who may not gets the same answer for unknown and unreadable.
    if filters.environment is None or limit is None or filters.environment in limit:
        return
    raise BadFilter(
        f"environment {filters.environment!r} is not an environment you may read: "
        f"{', '.join(readable) or 'you may read none'}"
    )


def _store(web: Web) -> AuditStore:
    store = web.context.audit
    if store is None:
        raise BadFilter("this server keeps no audit trail", code="no_audit_trail")
    return store


async def _page(
    store: AuditStore, filters: AuditFilters, limit: frozenset[str] | None
) -> AuditPage:
    try:
        return await store.search(filters.query(limit), limit=filters.limit, cursor=filters.cursor)
    except UsageError as error:
        raise BadFilter(f"cursor: {error.message}; {error.hint}") from None


# --------------------------------------------------------------------------- downloads


def csv_cell(value: object) -> str:
    """One CSV cell: text a spreadsheet would take for a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = json.dumps(list(value), ensure_ascii=False)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def _csv_lines(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    async for record in records:
        values = record.as_dict()
        writer.writerow([csv_cell(values[column]) for column in CSV_COLUMNS])
        rows += 1
        if rows % _CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def _json_lines(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    lines: list[str] = []
    async for record in records:
        lines.append(json.dumps(record.as_dict(), ensure_ascii=False, separators=(",", ":")))
        if len(lines) == _CHUNK_ROWS:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


async def _logged(records: AsyncIterator[AuditRecord]) -> AsyncIterator[AuditRecord]:
    # Past the headers a failure can only cut the download short: say why in the log.
    try:
        async for record in records:
            yield record
    except StoreError as error:
        logger.warning("audit download cut short: %s", error)
        raise


# --------------------------------------------------------------------------- routes


def register(router: APIRouter, web: Web) -> None:
    """Add /audit, /api/audit, /api/audit.csv and /api/audit.jsonl."""

    def unavailable(request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": {"code": "unavailable", "message": _UNAVAILABLE}}, status_code=503
            )
        return web.error_page(request, 503, "Unavailable", _UNAVAILABLE)

    @router.get("/audit", include_in_schema=False)
    async def audit_page(request: Request, viewer: CurrentViewer) -> Response:
        filters = parse_filters(request.query_params, allowed=FILTERS, form=True)
        readable, limit = await _scope(web, viewer)
        _check_environment(filters, readable, limit)
        try:
            page = await _page(_store(web), filters, limit)
        except StoreError as error:
            logger.warning("audit page: %s", error)
            return unavailable(request)
        values = filters.as_query(paging=False)
        return web.render(
            request,
            "audit.html",
            {
                "heading": "Audit trail",
                "filters": filters,
                "environments": readable,
                "results": sorted(RESULTS),
                "events": page.records,
                "next_cursor": page.next_cursor,
                "query_values": values | {"limit": filters.as_query()["limit"]},
                "export_values": values,
                "form_time": _form_time,
            },
            viewer=viewer,
        )

    @router.get(
        "/api/audit",
        summary="List audit events",
        response_model=AuditPageOut,
        responses={
            400: {"model": ErrorOut},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            503: {"model": ErrorOut},
        },
    )
    async def audit_api(
        request: Request,
        viewer: CurrentViewer,
        user: UserParam = None,
        environment: EnvironmentParam = None,
        result: ResultParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        limit: LimitParam = None,
        cursor: CursorParam = None,
    ) -> Response:
        """Audit events, newest first, filtered; ``next_cursor`` pages on (see docs/web.md)."""
        # The parameters above document the API; the checks are parse_filters' (clear 400s).
        filters = parse_filters(request.query_params, allowed=FILTERS, form=False)
        readable, rows = await _scope(web, viewer)
        _check_environment(filters, readable, rows)
        try:
            page = await _page(_store(web), filters, rows)
        except StoreError as error:
            logger.warning("audit API: %s", error)
            return unavailable(request)
        body = {
            "events": [record.as_dict() for record in page.records],
            "next_cursor": page.next_cursor,
            "limit": filters.limit,
            "filters": filters.as_json(),
            "environments": readable,
        }
        return JSONResponse(body)

    async def download(request: Request, viewer: Viewer, kind: str) -> Response:
        filters = parse_filters(request.query_params, allowed=EXPORT_FILTERS, form=False)
        readable, rows = await _scope(web, viewer)
        _check_environment(filters, readable, rows)
        store = _store(web)
        query = filters.query(rows)
        try:
            matching = await store.count_matching(query, up_to=MAX_EXPORT + 1)
        except StoreError as error:
            logger.warning("audit download: %s", error)
            return unavailable(request)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        records = _logged(store.export(query, max_rows=MAX_EXPORT))
        if kind == "csv":
            body, media_type = _csv_lines(records), "text/csv; charset=utf-8"
        else:
            body, media_type = _json_lines(records), "application/x-ndjson; charset=utf-8"
        headers = {
            "Content-Disposition": f'attachment; filename="imgctl-audit-{stamp}.{kind}"',
            # Counted just before the rows are read: more rows than one download holds.
            "X-Imgctl-Truncated": "true" if matching > MAX_EXPORT else "false",
        }
        return StreamingResponse(body, media_type=media_type, headers=headers)

    export_responses: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        503: {"model": ErrorOut},
    }

    @router.get(
        "/api/audit.csv",
        summary="Download audit events as CSV",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "A header row, then one row per event, newest first (columns "
                "as the events of /api/audit; groups as a JSON array; a cell starting with "
                "= + - @ tab or CR gets a leading '). At most 100,000 rows; "
                "X-Imgctl-Truncated: true when more matched.",
            },
            **export_responses,
        },
    )
    async def audit_csv(
        request: Request,
        viewer: CurrentViewer,
        user: UserParam = None,
        environment: EnvironmentParam = None,
        result: ResultParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
    ) -> Response:
        """Every matching audit event (up to 100,000) as CSV, newest first."""
        return await download(request, viewer, "csv")

    @router.get(
        "/api/audit.jsonl",
        summary="Download audit events as JSON lines",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                "description": "One JSON object per line, each an event of /api/audit, newest "
                "first. At most 100,000 lines; X-Imgctl-Truncated: true when more matched.",
            },
            **export_responses,
        },
    )
    async def audit_jsonl(
        request: Request,
        viewer: CurrentViewer,
        user: UserParam = None,
        environment: EnvironmentParam = None,
        result: ResultParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
    ) -> Response:
        """Every matching audit event (up to 100,000) as JSON lines, newest first."""
        return await download(request, viewer, "jsonl")


def _form_time(value: datetime | None) -> str:
    """``value`` as an ``<input type="datetime-local">`` shows it (UTC, seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value is not None else ""
