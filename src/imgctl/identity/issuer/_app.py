"""HTTP around IssuerService: FastAPI routes under the issuer URL's path, served by uvicorn."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imgctl.identity.issuer._service import IssuerService, OAuthError

__all__ = ["create_app"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def create_app(service: IssuerService) -> FastAPI:
    """The ASGI app: discovery, ``/keys``, ``/token`` and ``/healthz`` under the issuer path."""
    prefix = urlsplit(service.issuer_url).path.rstrip("/")
    app = FastAPI(title="imgctl issuer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(f"{prefix}/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return service.discovery()

    @app.get(f"{prefix}/keys")
    async def keys() -> JSONResponse:
        # Verifiers cache keys; a short max-age lets a rotation reach them soon.
        return JSONResponse(service.jwks(), headers={"Cache-Control": "max-age=60"})

    @app.get(f"{prefix}/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"{prefix}/token")
    async def token(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            error = OAuthError(
                400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
            )
            return JSONResponse(error.body(), status_code=error.status, headers=_NO_STORE)
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        try:
            answer = service.token(form, request.headers.get("authorization"))
        except OAuthError as error:
            headers = dict(_NO_STORE)
            if error.error == "invalid_client":
                headers["WWW-Authenticate"] = 'Basic realm="imgctl issuer"'
            return JSONResponse(error.body(), status_code=error.status, headers=headers)
        return JSONResponse(answer, headers=_NO_STORE)

    return app
