"""Build the pages' router: login, static files, then each page module of :data:`PAGE_MODULES`."""

from __future__ import annotations

import importlib
from typing import Final

from fastapi import APIRouter, Response

from ._access import Access
from ._context import WebContext
from ._render import Web

__all__ = ["PAGE_MODULES", "create_web_router"]

PAGE_MODULES: Final = ("_matrix", "_audit", "_story", "_watches", "_charts")
"""The page modules, each with ``register(router: APIRouter, web: Web) -> None``."""


def create_web_router(context: WebContext, access: Access) -> APIRouter:
    """The pages and their ``/api/...`` JSON, for ``app.include_router``."""
    web = Web(context, access)
    router = APIRouter(route_class=web.route_class())

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return web.static(name)

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        # No icon: an answer, so that browsers do not log a 404 on every page.
        return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})

    from . import _login

    _login.register(router, web)
    for module in PAGE_MODULES:
        importlib.import_module(f"{__package__}.{module}").register(router, web)
    return router
