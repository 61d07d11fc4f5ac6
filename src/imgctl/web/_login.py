"""``/login`` and ``/logout``: a browser signs in by pasting its token once.

``POST /login`` checks the token exactly as a page would (:meth:`Access.identify`), then keeps
it in the :data:`~._access.COOKIE` cookie: ``Secure; HttpOnly; SameSite=Strict; Path=/``, for
as long as the token lives (a catalog token: :data:`~._access.CATALOG_SESSION_SECONDS`). Both
forms are POST only and refused unless the browser says the form came from this server's own
pages (:func:`same_origin`: ``Sec-Fetch-Site: same-origin``, an ``Origin`` naming this host):
with SameSite=Strict that keeps another site from signing a browser in or out.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from ._access import COOKIE, MAX_WEB_TOKEN, AccessDenied, Viewer
from ._render import Web, token_of

__all__ = ["register"]

_MAX_FORM_BYTES: Final = MAX_WEB_TOKEN + 4096


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in; anything else (another site) is ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(character) < 0x20 for character in value):
        return "/"
    return value


def same_origin(request: Request) -> bool:
    """True when the browser says the form was sent by a page of this server.

    ``Sec-Fetch-Site: same-origin`` is what browsers say (every current one sends it); an
    ``Origin`` must then name this host too, when it is not ``null`` (the pages' Referrer-Policy,
    no-referrer, makes browsers send ``Origin: null`` on a POST). Without Sec-Fetch-Site, the
    Origin alone must name this host.
    """
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin", "")
    host = request.headers.get("host", "")
    if site is not None and site != "same-origin":
        return False
    if origin and origin != "null":
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower() != ""
    return site == "same-origin"


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form, or None when it is too large or not a form."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


def register(router: APIRouter, web: Web) -> None:
    """Add GET/POST /login and POST /logout."""

    def login_page(
        request: Request,
        *,
        next_path: str,
        message: str = "",
        status: int = 200,
        viewer: Viewer | None = None,
    ) -> HTMLResponse:
        return web.render(
            request,
            "login.html",
            {
                "next": next_path,
                "message": message,
                "kind": web.access.kind,
                "public": web.access.public,
                "signed_in": viewer,
            },
            viewer=viewer,
            status=status,
        )

    @router.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "/") -> Response:
        viewer = None
        if web.access.public or token_of(request):
            try:
                viewer = await web.viewer(request)
            except AccessDenied:
                viewer = None
        return login_page(request, next_path=safe_next(next), viewer=viewer)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return web.error_page(
                request, 403, "Not allowed", "sign-in forms are only taken from this server's pages"
            )
        form = await _form(request)
        if form is None:
            return web.bad_request(request, "bad_form", "send the login form (token, next)")
        next_path = safe_next(form.get("next"))
        token = form.get("token", "").strip()
        if web.access.public:
            return RedirectResponse(next_path, status_code=303)
        try:
            viewer = await web.access.identify(token or None)
        except AccessDenied as denied:
            return login_page(
                request, next_path=next_path, message=denied.message, status=denied.status
            )
        seconds = web.access.session_seconds(viewer)
        if seconds <= 0:
            return login_page(
                request, next_path=next_path, message="the token has expired", status=401
            )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=seconds,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not same_origin(request):
            return web.error_page(
                request,
                403,
                "Not allowed",
                "sign-out forms are only taken from this server's pages",
            )
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response
