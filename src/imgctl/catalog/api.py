"""imagelist's REST API on :class:`~imgctl.store.CatalogStore`, with imgctl's improvements.

Kept from imagelist: ``PUT /images`` answers 200 and on an existing id changes only its tags,
``DELETE`` answers 204 even for an unknown id, reads need no token. Added: ``DELETE`` with
``Prefer: return=representation`` answers 200 with the entries it removed (``imgctl catalog
rm`` says what it withdrew). Improved: every error is a JSON body ``{"error": {"code",
"message"}}``, ids may contain ``/`` and ``@``, an empty tags list clears the tags, tokens are
compared in constant time, a body is refused as soon as it passes :data:`MAX_BODY_BYTES`.
Different by default: without a tokens file, writes are refused unless
the operator allows anonymous writes (imagelist's no-token mode) explicitly.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from imgctl._internal.bounds import (
    MAX_CATALOG_ID,
    MAX_CATALOG_TAGS,
    MAX_ENVIRONMENT,
    MAX_NAME,
    MAX_TAG,
)
from imgctl.errors import InvalidReferenceError, StoreError
from imgctl.oci.reference import Reference
from imgctl.store import SORT_KEYS, CatalogStore

from .tokens import TokenFile

__all__ = [
    "MAX_BODY_BYTES",
    "ImageIn",
    "create_catalog_app",
    "create_catalog_router",
    "error_body",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1 << 20
"""Largest ``PUT /images`` body read; a longer one is refused with 413 once it passes this."""

_WRITES_DISABLED: Final = (
    "catalog writes are turned off: this server has no tokens file. Start it with "
    "--tokens-file FILE (or IMGCTL_TOKENS_FILE) and send 'Authorization: Bearer <token>', or, "
    "to let anyone who can reach it write, with --allow-anonymous-catalog-writes "
    "(IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES=true)"
)


class ImageIn(BaseModel):
    """The body of ``PUT /images``."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_CATALOG_ID)]
    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)]
    tags: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_TAG)]],
        Field(max_length=MAX_CATALOG_TAGS),
    ]
    environment: Annotated[StrictStr, Field(max_length=MAX_ENVIRONMENT)] = ""


class ImageOut(BaseModel):
    """One catalog entry as the API answers it (documentation: the answers are built by hand).

    imagelist's five fields always; imgctl's own only when they are set: ``environment`` for
    entries of one, the promotion fields for entries the promotion server recorded.
    """

    created_at: str = Field(description="RFC 3339, UTC (imagelist)")
    updated_at: str = Field(description="RFC 3339, UTC (imagelist)")
    id: str = Field(description="The image id: a digest for promoted images (imagelist)")
    name: str = Field(description="The repository, REGISTRY/PATH (imagelist)")
    tags: list[str] = Field(description="Tags of this id in that repository (imagelist)")
    environment: str | None = Field(None, description="Where it was promoted; absent: none")
    source: str | None = Field(None, description="What was promoted, REGISTRY/REPO:TAG@DIGEST")
    promoted_by: str | None = Field(None, description="Who promoted it (email, else subject)")
    promoted_at: str | None = Field(None, description="When it was last promoted, RFC 3339")
    signed: bool | None = Field(
        None,
        description="Whether the promotion that recorded the entry left the digest signed "
        "with the server's key (--sign-key); absent: not known (no key, or written with PUT)",
    )
    attested: bool | None = Field(
        None,
        description="Whether that promotion left the digest with the server's promotion "
        "attestation (in-toto statement in a DSSE envelope under .att); absent: not known",
    )


class RemovedEntry(BaseModel):
    """One entry ``DELETE /images/{id}`` removed."""

    id: str
    name: str
    environment: str | None = Field(None, description="Where it was promoted; null: none")


class RemovedOut(BaseModel):
    """The answer of ``DELETE /images/{id}`` with ``Prefer: return=representation``."""

    removed: list[RemovedEntry]


class ErrorOut(BaseModel):
    """The error body of every endpoint: ``{"error": {"code", "message"}}``."""

    error: dict[str, str]


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON error body every catalog endpoint (and the admission webhook) answers with."""
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return :func:`error_body` as a response."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def create_catalog_router(
    store: CatalogStore, tokens: TokenFile | None, *, anonymous_writes: bool = False
) -> APIRouter:
    """Return the router with ``/images`` and ``/health/ping``.

    Writes need a token of ``tokens``; without a tokens file they are refused (403), unless
    ``anonymous_writes`` lets anyone write. Both at once is a ValueError.
    """
    if tokens is not None and anonymous_writes:
        raise ValueError("anonymous writes and a tokens file exclude each other")
    router = APIRouter()

    def unauthorized(request: Request) -> JSONResponse | None:
        if tokens is None:
            if anonymous_writes:
                return None
            return error_response(403, "writes_disabled", _WRITES_DISABLED)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            owner = tokens.check(credentials.strip())
            if owner is not None:
                request.state.token_name = owner
                return None
        return error_response(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="imgctl catalog"'},
        )

    @router.get(
        "/images",
        summary="List images",
        response_model=None,
        responses={200: {"model": list[ImageOut]}, 400: {"model": ErrorOut}},
    )
    async def list_images(
        name: str | None = None,
        sort: str = "updated_at",
        environment: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
    ) -> Response:
        if sort not in SORT_KEYS:
            return error_response(
                400, "invalid_sort", f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}"
            )
        images = await store.list(
            name=name, sort=sort, environment=environment, tag=tag, digest=digest
        )
        return JSONResponse([image.as_json() for image in images])

    @router.get(
        "/images/{id:path}",
        summary="Get an image",
        response_model=None,
        responses={200: {"model": ImageOut}, 404: {"model": ErrorOut}},
    )
    async def get_image(
        id: str,
        environment: Annotated[str | None, Query()] = None,
        name: Annotated[str | None, Query()] = None,
    ) -> Response:
        # One digest can be an entry of several repositories and environments: the query
        # narrows them down, and of those left the most recently updated one answers.
        image = await store.get(id, environment, name=name) if id else None
        if image is None:
            where = "".join(
                f" {label} {value!r}"
                for label, value in (("in environment", environment), ("of", name))
                if value is not None
            )
            return error_response(404, "not_found", f"no image with id {id!r}{where}")
        return JSONResponse(image.as_json())

    @router.put(
        "/images",
        summary="Create an image or update its tags",
        response_model=None,
        responses={200: {"model": ImageOut}, 422: {"model": ErrorOut}},
    )
    async def put_image(request: Request) -> Response:
        denied = unauthorized(request)
        if denied is not None:
            return denied
        raw = await _read_body(request)
        if raw is None:
            # The rest of the body is never read: the connection closes after this answer.
            return error_response(
                413,
                "too_large",
                f"the request body is larger than {MAX_BODY_BYTES} bytes",
                headers={"Connection": "close"},
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid_json", "the request body is not JSON")
        try:
            image_in = ImageIn.model_validate(body)
        except ValidationError as error:
            problems = [
                f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
                for item in error.errors(include_url=False, include_input=False)
            ]
            return error_response(422, "invalid_image", "; ".join(problems))
        problem = _environment_name_problem(image_in)
        if problem is not None:
            return error_response(422, "invalid_image", problem)
        image, _ = await store.put(
            image_in.id, image_in.name, image_in.tags, environment=image_in.environment
        )
        # imagelist answers 200 to a create as to an update.
        return JSONResponse(image.as_json())

    @router.delete(
        "/images/{id:path}",
        summary="Delete an image",
        status_code=204,
        response_model=None,
        responses={200: {"model": RemovedOut}},
    )
    async def delete_image(
        request: Request,
        id: str,
        environment: Annotated[str | None, Query()] = None,
        name: Annotated[str | None, Query()] = None,
    ) -> Response:
        """Remove the entries of an id: 204, or 200 with them for ``Prefer: return=representation``.

        imagelist's clients send no Prefer header and get its 204, also for an unknown id;
        ``imgctl catalog rm`` asks for the removed entries to say what it withdrew.
        """
        denied = unauthorized(request)
        if denied is not None:
            return denied
        # Every entry of the id, unless the query names an environment or a repository.
        removed = await store.remove(id, environment, name=name) if id else []
        if not _prefers_representation(request.headers.get("prefer", "")):
            return Response(status_code=204)
        return JSONResponse(
            {"removed": [{"id": i, "name": n, "environment": e or None} for e, n, i in removed]},
            headers={"Preference-Applied": "return=representation"},
        )

    @router.get("/health/ping", summary="Check the database", response_model=None)
    async def ping() -> Response:
        try:
            await store.ping()
        except StoreError as error:
            logger.warning("catalog health check failed: %s", error)
            return error_response(503, "unavailable", "the database is unreachable")
        return JSONResponse({"status": "ok"})

    return router


def _prefers_representation(prefer: str) -> bool:
    """Whether a Prefer header (RFC 7240) asks for ``return=representation``."""
    return any(
        part.strip().replace(" ", "").lower() == "return=representation"
        for preference in prefer[:1024].split(",")
        for part in preference.split(";")[:1]
    )


async def _read_body(request: Request) -> bytes | None:
    """The request's body, or None as soon as it is (or says it will be) over the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    # Counted as it arrives: Content-Length may be absent (chunked) or wrong.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _environment_name_problem(image: ImageIn) -> str | None:
    """Why ``image.name`` cannot be matched by admission in its environment, if it cannot.

    The webhook asks about canonical repository names; a record under another spelling of the
    name would never match, and the cluster would refuse an image its owner believes recorded.
    """
    if not image.environment:
        return None
    try:
        reference = Reference.parse(image.name)
    except InvalidReferenceError as error:
        return f"name: {image.name!r} is not a valid repository name ({error.message})"
    if reference.tag is not None or reference.digest is not None:
        return (
            f"name: {image.name!r} must be a repository without a tag or digest "
            f"(use {reference.name!r}, and put tags in 'tags')"
        )
    if reference.name != image.name:
        return (
            f"name: {image.name!r} is not the canonical repository name the admission webhook "
            f"asks about: use {reference.name!r}"
        )
    return None


def create_catalog_app(
    store: CatalogStore,
    tokens: TokenFile | None,
    *,
    anonymous_writes: bool = False,
    pages: APIRouter | None = None,
) -> FastAPI:
    """Return a standalone app serving :func:`create_catalog_router` (OpenAPI at /openapi.json).

    ``pages`` (imgctl.web's router) goes before the catalog's routes, so that its HTML-only
    ``/images/<repository>`` page sees a browser's request first.
    """
    app = FastAPI(title="imgctl catalog", openapi_url="/openapi.json")
    if pages is not None:
        app.include_router(pages)
    app.include_router(create_catalog_router(store, tokens, anonymous_writes=anonymous_writes))
    return app
