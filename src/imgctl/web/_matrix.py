"""The release matrix at ``/`` and ``/api/releases`` (issue 20 item 1): being built."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ._access import Viewer
from ._render import Web

__all__ = ["register"]


def register(router: APIRouter, web: Web) -> None:
    """Add ``/`` (the page)."""

    @router.get("/", include_in_schema=False)
    async def releases_page(
        request: Request, viewer: Annotated[Viewer, Depends(web.viewer)]
    ) -> Response:
        return web.render(request, "matrix.html", {"heading": "Releases"}, viewer=viewer)
