"""The server's HTTP side: health, readiness, metrics, the catalog API, admission and the pages."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp

from imgctl.server.core import ServerCore

if TYPE_CHECKING:
    from imgctl.catalog.admission import Exemptions, Signatures
    from imgctl.catalog.tokens import TokenFile

__all__ = ["create_http_app"]


def create_http_app(
    core: ServerCore,
    tokens: TokenFile | None = None,
    *,
    anonymous_writes: bool = False,
    exemptions: Exemptions | None = None,
    signatures: Signatures | None = None,
    public_pages: bool = False,
    pipeline: tuple[str, ...] = (),
    grpc_address: str | None = None,
) -> ASGIApp:
    """The ASGI app served on --http-address.

    Catalog writes need a token of ``tokens``, or, without one, ``anonymous_writes``; the
    admission webhook's ``exemptions`` default to those of the process environment, and
    ``signatures`` (--require-signature) is its optional signature rule. The pages
    (:mod:`imgctl.web`) need the gRPC API's tokens unless ``public_pages``; ``pipeline`` is
    IMGCTL_PIPELINE's order.
    """
    from imgctl.catalog.admission import AdmissionWebhook, Exemptions
    from imgctl.catalog.api import create_catalog_router
    from imgctl.web import OidcAccess, WebContext, create_web_router

    app = FastAPI(title="imgctl server", docs_url=None, redoc_url=None)
    promoter = core.promoter
    access = OidcAccess(core.verifier, promoter.policy, public=public_pages)
    access.set_environments(promoter.environments.names())
    context = WebContext(
        catalog=core.catalog,
        audit=core.store,
        environments=promoter.environments,
        policy=promoter.policy,
        pipeline=pipeline,
        default_source=promoter.default_source,
        scanner=lambda: core.scanner,
        grpc_address=grpc_address,
        title="imgctl",
    )
    # The pages go first: /images/<repository> is a story page for a browser (text/html) and
    # passes every other request on to the catalog API's GET /images/{id} behind it.
    app.include_router(create_web_router(context, access))
    if core.catalog is not None:
        app.include_router(
            create_catalog_router(core.catalog, tokens, anonymous_writes=anonymous_writes)
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if core.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "environments": core.promoter.environments.names()})

    @app.get("/scan")
    async def scan() -> JSONResponse:
        if core.scanner is None:
            return JSONResponse(
                {
                    "error": "this server watches no repositories",
                    "hint": "start it with --watches FILE (or IMGCTL_WATCHES_FILE)",
                },
                status_code=404,
            )
        statuses = await core.scanner.statuses()
        body: dict[str, object] = {}
        if core.scanner.watches_file is not None:
            body["watchesFile"] = core.scanner.watches_file.state.as_json()
        body["watches"] = [status.as_json() for status in statuses]
        return JSONResponse(body)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from imgctl.server._metrics import REGISTRY

        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    if core.catalog is None:
        return app
    if exemptions is None:
        exemptions = Exemptions.from_environment(os.environ)
    return AdmissionWebhook(
        app,
        core.catalog.promoted,
        exemptions,
        core.catalog.known,
        signatures=signatures,
        generation=core.catalog.generation,
    )
