"""The server's HTTP side: health, readiness and metrics (the catalog API comes later)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from imgctl.server.core import ServerCore

__all__ = ["create_http_app"]


def create_http_app(core: ServerCore) -> FastAPI:
    """The FastAPI app served on --http-address."""
    app = FastAPI(title="imgctl server", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if core.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "environments": core.promoter.environments.names()})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from imgctl.server._metrics import REGISTRY

        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
