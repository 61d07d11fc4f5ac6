"""One image's story: ``/story/<repository>`` and ``/api/images/<repository>/history``.

Issue 20 item 2. Every promotion of one repository (the path ``imgctl promote`` names, such as
``shop/web``) across all environments, newest first, read from the audit trail: who, from where
to where, digest, tags, request id, result (denied, failed and invalid attempts included), signed
and attested. For each digest of the page: the environments the catalog has it in now, and the
exact ``imgctl promote`` command that takes it from the furthest of them to the next
environment in pipeline order.

The page is not at ``/images/<repository>``: ``GET /images/{id}`` (any path) is the
imagelist-compatible catalog API, which answers there first. The JSON is under
``/api/images/<repository>/history``, where nothing else lives.

Only the environments the caller may read are shown: a row naming another one is left out
(the audit query's ``readable``), and a repository with no row left is unknown (404), so the
page does not tell that it exists elsewhere.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imgctl.errors import UsageError
from imgctl.oci.reference import valid_repository
from imgctl.store import AuditRecord, RepositoryQuery

from ._access import Viewer
from ._context import WebContext
from ._matrix import environment_order
from ._render import BadFilter, CurrentViewer, HtmlOnlyWebRoute, Web, rfc3339

__all__ = [
    "MAX_PAGE_SIZE",
    "PAGE_SIZE",
    "DigestStep",
    "Event",
    "Story",
    "build_story",
    "promote_command",
    "register",
]

PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
_AUTO_PEER: Final = "scan:"  # the peer of an auto-promotion: scan:<watch name>
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::", "[::]", "*"})  # noqa: S104


# --------------------------------------------------------------------------- the JSON's schema


class EventOut(BaseModel):
    """One promotion request of the repository, as the audit trail recorded it."""

    request_id: str = Field(description="The request id (gRPC x-request-id)")
    time: str = Field(description="When the request ended, RFC 3339 (UTC)")
    result: str = Field(description="succeeded, denied, failed or invalid")
    user: str | None = Field(description="Who asked: email, else subject; null if unknown")
    subject: str | None = Field(description="The caller's token subject")
    email: str | None = Field(description="The caller's email")
    auto_promotion: str | None = Field(
        description="The watch whose auto-promotion this was (imgctl server --watches)"
    )
    source: str | None = Field(description="Source environment")
    destination: str | None = Field(description="Destination environment")
    reference: str = Field(description="The reference as the caller sent it")
    tags: list[str] = Field(description="The tag the request named (empty: by digest)")
    digest: str | None = Field(
        description="The digest promoted (succeeded), else the one the reference pinned"
    )
    source_ref: str | None = Field(description="REGISTRY/REPO:TAG@DIGEST copied from")
    destination_ref: str | None = Field(description="REGISTRY/REPO:TAG@DIGEST copied to")
    signed: bool | None = Field(description="Signed by the server's key; null: no signing key")
    signature_key: str | None = Field(description="The signing key's id")
    signature_error: str | None = Field(description="Why it was not signed")
    attested: bool | None = Field(
        description="The server's promotion attestation is there; null: no signing key"
    )
    attestation_error: str | None = Field(description="Why it was not attested")
    error_code: str | None = Field(description="The gRPC status name of a refused request")
    error: str | None = Field(description="What went wrong")
    duration_ms: int | None = None
    bytes_copied: int | None = None


class DigestOut(BaseModel):
    """A digest of the page: where it was promoted, and the command for the next step."""

    digest: str
    tags: list[str] = Field(
        description="Its tags now (the catalog's), those of its furthest environment first"
    )
    environments: list[str] = Field(
        description="Environments it has been promoted into (the catalog's), in pipeline order"
    )
    next_environment: str | None = Field(
        description="The environment after the last of those (null: it is in the last one, "
        "or was never promoted, or the next is not one you may read)"
    )
    command: str | None = Field(description="imgctl promote ... taking it there")


class HistoryOut(BaseModel):
    """``GET /api/images/<repository>/history``: one page of a repository's promotions."""

    repository: str
    environments: list[str] = Field(description="The environments you may read, in order")
    events: list[EventOut] = Field(description="Newest first")
    digests: list[DigestOut] = Field(description="The digests of these events, newest first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for older events")


class ErrorOut(BaseModel):
    """An error: ``{"error": {"code", "message"}}``."""

    error: dict[str, str]


# --------------------------------------------------------------------------- building it


@dataclass(frozen=True)
class Event:
    """One audit row of the repository, with its reference taken apart."""

    record: AuditRecord
    tags: tuple[str, ...]
    digest: str | None

    @property
    def user(self) -> str | None:
        """Email, else subject."""
        return self.record.email or self.record.subject

    @property
    def auto_promotion(self) -> str | None:
        """The watch name of an auto-promotion."""
        peer = self.record.peer or ""
        return peer[len(_AUTO_PEER) :] if peer.startswith(_AUTO_PEER) else None

    def as_json(self) -> dict[str, Any]:
        """The event as the API answers it (:class:`EventOut`)."""
        r = self.record
        return {
            "request_id": r.request_id,
            "time": rfc3339(r.time),
            "result": r.result,
            "user": self.user,
            "subject": r.subject,
            "email": r.email,
            "auto_promotion": self.auto_promotion,
            "source": r.source_env,
            "destination": r.destination_env,
            "reference": r.reference or "",
            "tags": list(self.tags),
            "digest": self.digest,
            "source_ref": r.source_ref,
            "destination_ref": r.destination_ref,
            "signed": r.signed,
            "signature_key": r.signature_key,
            "signature_error": r.signature_error,
            "attested": r.attested,
            "attestation_error": r.attestation_error,
            "error_code": r.error_code,
            "error": r.error,
            "duration_ms": r.duration_ms,
            "bytes_copied": r.bytes_copied,
        }


@dataclass(frozen=True)
class DigestStep:
    """Where one digest has been promoted, and the command taking it one environment further."""

    digest: str
    tags: tuple[str, ...]
    environments: tuple[str, ...]
    next_environment: str | None
    command: str | None
    final: bool = False  # in the pipeline's last environment: no next step

    def as_json(self) -> dict[str, Any]:
        """The digest as the API answers it (:class:`DigestOut`)."""
        return {
            "digest": self.digest,
            "tags": list(self.tags),
            "environments": list(self.environments),
            "next_environment": self.next_environment,
            "command": self.command,
        }


@dataclass
class Story:
    """One page of a repository's story."""

    repository: str
    environments: list[str]
    events: list[Event]
    digests: list[DigestStep]
    next_cursor: str | None
    limit: int = PAGE_SIZE
    cursor: str | None = None
    server: str | None = field(default=None)

    def as_json(self) -> dict[str, Any]:
        """The page as the API answers it (:class:`HistoryOut`)."""
        return {
            "repository": self.repository,
            "environments": self.environments,
            "events": [event.as_json() for event in self.events],
            "digests": [step.as_json() for step in self.digests],
            "next_cursor": self.next_cursor,
        }


class UnknownRepository(Exception):
    """No promotion of the repository in any environment the caller may read: 404."""

    def __init__(self, repository: str) -> None:
        super().__init__(repository)
        self.message = (
            f"no promotion of {repository!r} is recorded in an environment you may read "
            "(name the repository as imgctl promote does, without registry: shop/web)"
        )


def split_reference(reference: str) -> tuple[str | None, str | None]:
    """The tag and the digest of ``REPO[:TAG][@DIGEST]`` (each None when absent)."""
    name, at, digest = reference.strip().partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else None
    return tag or None, (digest or None) if at else None


def promote_command(
    repository: str,
    digest: str,
    tag: str | None,
    source: str,
    destination: str,
    server: str | None = None,
) -> str:
    """The ``imgctl promote`` command copying ``digest`` (as ``tag``) from source to destination.

    Tag and digest together: the destination gets the tag, on exactly these bytes (the server
    promotes the digest; a tag moved since in the source does not change what is copied).
    """
    reference = f"{repository}:{tag}@{digest}" if tag else f"{repository}@{digest}"
    words = ["imgctl", "promote", reference, "--source", source, "-d", destination]
    if server:
        words += ["-s", server]
    return shlex.join(words)


def command_server(address: str | None) -> str | None:
    """The server's gRPC address for ``-s``, when it names a host a client can dial."""
    if not address:
        return None
    host = address.rpartition(":")[0] if ":" in address else address
    return None if host in _WILDCARD_HOSTS else address


def _event(record: AuditRecord) -> Event:
    tag, pinned = split_reference(record.reference or "")
    return Event(record, (tag,) if tag else (), record.digest or pinned)


Placements = dict[str, dict[str, tuple[str, ...]]]
"""digest -> {environment: the digest's tags there}, from the catalog."""


async def placements(
    context: WebContext, repository: str, digests: Sequence[str], readable: Sequence[str] | None
) -> Placements:
    """Where the catalog has each of ``digests`` of ``repository`` now, with its tags there.

    One indexed catalog query per configured environment (its registry and prefix name the
    repository there); without configured registries (catalog serve without
    ``IMGCTL_REGISTRY_*``), one per digest. Only ``readable`` environments (None: all).
    """
    catalog = context.catalog
    if catalog is None or not digests:
        return {}
    wanted = set(digests)
    found: Placements = {}
    environments = [env for env in context.environments or () if env.registry]
    if environments:
        for env in environments:
            if readable is not None and env.name not in readable:
                continue
            name = f"{env.describe()}/{repository}"
            for entry in await catalog.list(name=name, environment=env.name):
                if entry.id in wanted:
                    found.setdefault(entry.id, {})[env.name] = entry.tags
        return found
    for digest in digests:
        for entry in await catalog.list(digest=digest):
            where = entry.environment
            if (
                entry.id == digest
                and where
                and (readable is None or where in readable)
                and context.repository_path(entry.name, where) == repository
            ):
                found.setdefault(digest, {})[where] = entry.tags
    return found


def _steps(
    repository: str,
    digests: Sequence[str],
    placed: Placements,
    order: Sequence[str],
    readable: Sequence[str],
    server: str | None,
) -> list[DigestStep]:
    """Each digest's environments and the command taking it past the furthest one."""
    position = {name: index for index, name in enumerate(order)}
    steps = []
    for digest in digests:
        where = placed.get(digest, {})
        environments = tuple(sorted((e for e in where if e in position), key=position.__getitem__))
        tags: list[str] = []
        for environment in reversed(environments):  # the furthest environment's tags first
            tags += [tag for tag in where[environment] if tag not in tags]
        following = None
        command = None
        final = False
        if environments:
            last = environments[-1]
            index = position[last] + 1
            final = index == len(order)
            if not final and order[index] in readable:
                following = order[index]
                # The tag it has where it is; none left there (moved on to a newer digest):
                # by digest alone, so the command moves no tag back.
                tag = where[last][0] if where[last] else None
                command = promote_command(repository, digest, tag, last, following, server)
        steps.append(DigestStep(digest, tuple(tags), environments, following, command, final))
    return steps


async def build_story(
    web: Web, viewer: Viewer, repository: str, *, cursor: str | None, limit: int
) -> Story:
    """A page of ``repository``'s story; BadFilter for a bad query, UnknownRepository: 404."""
    if not valid_repository(repository):
        raise BadFilter(
            f"{repository!r} is not a repository name: lowercase path components such as "
            "shop/web, without registry, tag or digest",
            code="bad_repository",
        )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadFilter(f"limit must be 1 to {MAX_PAGE_SIZE}, got {limit}")
    audit = web.context.audit
    if audit is None:
        raise UnknownRepository(repository)
    order = await environment_order(web)
    readable = viewer.readable(order)
    limited = None if viewer.promotes_to is None else frozenset(readable)
    query = RepositoryQuery(readable=limited, repository=repository)
    try:
        page = await audit.search(query, limit=limit, cursor=cursor)
    except UsageError as error:
        raise BadFilter(error.message, code="bad_cursor") from None
    if not page.records and cursor is None:
        raise UnknownRepository(repository)
    events = [_event(record) for record in page.records]
    digests = list(dict.fromkeys(e.digest for e in events if e.digest))
    placed = await placements(
        web.context, repository, digests, readable if limited is not None else None
    )
    server = command_server(web.context.grpc_address)
    shown = readable if limited is not None else list(order)
    return Story(
        repository,
        shown,
        events,
        _steps(repository, digests, placed, order, shown, server),
        page.next_cursor,
        limit=limit,
        cursor=cursor,
        server=server,
    )


# --------------------------------------------------------------------------- the routes


def register(router: APIRouter, web: Web) -> None:
    """Add ``/images/<repository>`` and ``/story/<repository>`` (the page) and its JSON.

    ``/images/<repository>`` answers only requests asking for HTML (:class:`HtmlOnlyWebRoute`):
    the catalog API's ``GET /images/{id}`` keeps every other request.
    """

    async def story_page(
        request: Request,
        repository: str,
        viewer: CurrentViewer,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Response:
        try:
            story = await build_story(web, viewer, repository, cursor=cursor, limit=limit)
        except UnknownRepository as unknown:
            return web.error_page(request, 404, "Unknown repository", unknown.message)
        return web.render(
            request,
            "story.html",
            {"heading": repository, "story": story},
            viewer=viewer,
        )

    for path in ("/images/{repository:path}", "/story/{repository:path}"):
        router.add_api_route(
            path,
            story_page,
            methods=["GET"],
            include_in_schema=False,
            route_class_override=web.route_class(HtmlOnlyWebRoute)
            if path.startswith("/images/")
            else None,
        )

    @router.get(
        "/api/images/{repository:path}/history",
        summary="One repository's promotions across environments, newest first",
        response_model=None,
        responses={
            200: {"model": HistoryOut},
            400: {"model": ErrorOut},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            404: {"model": ErrorOut},
        },
    )
    async def history_api(
        repository: str,
        viewer: CurrentViewer,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, Query(description=f"Events per page, 1 to {MAX_PAGE_SIZE}")] = (
            PAGE_SIZE
        ),
    ) -> Response:
        try:
            story = await build_story(web, viewer, repository, cursor=cursor, limit=limit)
        except UnknownRepository as unknown:
            return JSONResponse(
                {"error": {"code": "not_found", "message": unknown.message}}, status_code=404
            )
        return JSONResponse(story.as_json())
