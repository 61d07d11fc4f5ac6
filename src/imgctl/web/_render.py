"""What every page shares: templates, the viewer, errors, security headers, static files.

Every route of the web router is a :class:`WebRoute`: its answer (page, JSON, redirect or
error) gets the security headers, a caller who may not read it gets 401/403 (JSON under
``/api/``) or, on a page, a redirect to ``/login``, and a bad query (:class:`BadFilter`, or a
value FastAPI cannot convert) is a 400 with a message saying what is wrong: JSON
``{"error": {"code", "message"}}`` under ``/api/``, an HTML error page elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from ._access import COOKIE, MAX_WEB_TOKEN, Access, AccessDenied, Viewer

if TYPE_CHECKING:
    from ._context import WebContext

__all__ = [
    "CSP",
    "NAV_LINKS",
    "SECURITY_HEADERS",
    "BadFilter",
    "CurrentViewer",
    "Web",
    "WebRoute",
    "relative_time",
    "rfc3339",
]

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

NAV_LINKS: list[tuple[str, str]] = [
    ("/", "Releases"),
    ("/audit", "Audit"),
    ("/watches", "Watches"),
    ("/charts", "Charts"),
]
"""The header's links, in order: a page that belongs in it appends (path, label) here."""

STATIC_FILES: Final = {"web.css": "text/css; charset=utf-8", "web.js": "text/javascript"}
"""The files under static/ that ``/static/NAME`` serves (nothing else is reachable)."""


class BadFilter(Exception):
    """A query a page cannot answer: 400, with ``message`` saying what to send instead."""

    def __init__(self, message: str, *, code: str = "bad_filter") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def rfc3339(value: datetime | None) -> str:
    """``value`` in UTC as RFC 3339 with a Z ('' for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """``value`` as a person says it: 'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for limit, unit, size in (
        (60, "s", 1),
        (3600, "min", 60),
        (86400, "h", 3600),
        (86400 * 60, "days", 86400),
        (86400 * 730, "months", 86400 * 30),
    ):
        if seconds < limit:
            amount = int(seconds // size)
            if unit == "s" and amount < 10:
                return "just now"
            if unit == "days" and amount == 1:
                unit = "day"
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    years = int(seconds // (86400 * 365))
    return f"in {years} years" if future else f"{years} years ago"


def short_digest(digest: str | None) -> str:
    """``sha256:`` and the first 12 hex digits."""
    if not digest:
        return ""
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else digest[:19]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_json(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "query")
        problems.append(f"{where or 'query'}: {item.get('msg', 'invalid')}")
    return "; ".join(problems) or "the query is not valid"


class WebRoute(APIRoute):
    """A route of the pages: security headers on every answer, errors as the module says.

    :meth:`Web.route_class` makes the subclass that knows its :class:`Web`.
    """

    web: Web

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: map AccessDenied, BadFilter and validation errors."""
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            web = self.web
            request.scope["imgctl.web"] = web
            try:
                response = await original(request)
            except AccessDenied as denied:
                response = web.denied(request, denied)
            except BadFilter as bad:
                response = web.bad_request(request, bad.code, bad.message)
            except RequestValidationError as error:
                response = web.bad_request(request, "bad_filter", _validation_message(error))
            secure(response, request)
            return response

        return handler


def wants_html(scope: Scope) -> bool:
    """True when the request's Accept names text/html: a browser navigating, not an API client."""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return b"text/html" in value.lower()
    return False


class HtmlOnlyWebRoute(WebRoute):
    """A page route that matches only requests asking for HTML.

    ``/images/<repository>`` is both the catalog API's image (JSON, imagelist-compatible) and a
    repository's story page: a browser asks for text/html and gets the page, every API client
    (``*/*``, ``application/json``) passes on to the catalog route behind it.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Starlette's match, refused for a request that does not ask for HTML."""
        if scope.get("type") == "http" and not wants_html(scope):
            return Match.NONE, {}
        return super().matches(scope)


async def current_viewer(request: Request) -> Viewer:
    """The caller of a web route (AccessDenied if none): use it as :data:`CurrentViewer`."""
    web = request.scope.get("imgctl.web")
    assert isinstance(web, Web), "a web route is built by create_web_router"
    return await web.viewer(request)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
"""The parameter type of a page or API route that needs a reader: ``viewer: CurrentViewer``."""


def secure(response: Response, request: Request) -> None:
    """Add the security headers; nothing is cached but what says so itself (static files)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if "cache-control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("Vary", "Cookie, Authorization")


class Web:
    """What page modules use: the context, the viewer dependency, rendering and errors."""

    def __init__(self, context: WebContext, access: Access) -> None:
        self.context = context
        self.access = access
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("imgctl.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["rfc3339"] = rfc3339
        self.templates.filters["relative"] = relative_time
        self.templates.filters["short_digest"] = short_digest
        self.templates.globals["nav_links"] = NAV_LINKS
        self.templates.globals["static"] = self.static_url
        self.templates.globals["query"] = query_string
        self._static: dict[str, tuple[bytes, str]] = {}
        for name, media_type in STATIC_FILES.items():
            data = importlib.resources.files("imgctl.web").joinpath("static", name).read_bytes()
            self._static[name] = (data, media_type)
        self._versions = {
            name: hashlib.sha256(data).hexdigest()[:12] for name, (data, _) in self._static.items()
        }

    def route_class(self, base: type[WebRoute] = WebRoute) -> type[WebRoute]:
        """The route class of this web's router (``base``, bound to this web)."""
        return type(f"Bound{base.__name__}", (base,), {"web": self})

    # ------------------------------------------------------------------ who

    async def viewer(self, request: Request) -> Viewer:
        """The dependency of every page and API route: the caller, or AccessDenied."""
        return await self.access.identify(token_of(request))

    # ------------------------------------------------------------------ answers

    def static_url(self, name: str) -> str:
        """``/static/NAME?v=HASH``: a new version of the file is a new URL."""
        return f"/static/{name}?v={self._versions[name]}"

    def static(self, name: str) -> Response:
        """A file of static/ (404 for any other name)."""
        found = self._static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        data, media_type = found
        return Response(
            data, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

    def render(
        self,
        request: Request,
        template: str,
        values: Mapping[str, Any],
        *,
        viewer: Viewer | None,
        status: int = 200,
    ) -> HTMLResponse:
        """Render ``template`` (which extends base.html) with ``values``."""
        page = self.templates.get_template(template).render(
            {
                "viewer": viewer,
                "path": request.url.path,
                "title": self.context.title,
                "now": datetime.now(UTC),
                **values,
            }
        )
        return HTMLResponse(page, status_code=status)

    def bad_request(self, request: Request, code: str, message: str) -> Response:
        """400: JSON under /api/, else the error page."""
        if _is_api(request):
            return _error_json(400, code, message)
        return self.error_page(request, 400, "Bad request", message)

    def denied(self, request: Request, denied: AccessDenied) -> Response:
        """401/403/503: JSON under /api/; a page: to /login (401) or the error page."""
        if _is_api(request):
            answer = _error_json(denied.status, _DENIED_CODES[denied.status], denied.message)
            if denied.status == 401:
                answer.headers["WWW-Authenticate"] = 'Bearer realm="imgctl pages"'
            return answer
        if denied.status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            if COOKIE in request.cookies:
                # A cookie that no longer proves anything (expired token) is dropped.
                response.delete_cookie(COOKIE, path="/", secure=True, httponly=True)
            return response
        titles = {403: "Not allowed", 503: "Unavailable"}
        return self.error_page(request, denied.status, titles[denied.status], denied.message)

    def error_page(self, request: Request, status: int, heading: str, message: str) -> HTMLResponse:
        """An HTML error page saying what went wrong."""
        return self.render(
            request,
            "error.html",
            {"status": status, "heading": heading, "message": message},
            viewer=None,
            status=status,
        )


_DENIED_CODES: Final = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}


def token_of(request: Request) -> str | None:
    """The bearer token of the Authorization header, else the login cookie's."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()[: MAX_WEB_TOKEN + 1]
    cookie = request.cookies.get(COOKIE, "")
    return cookie[: MAX_WEB_TOKEN + 1] or None


def query_string(values: Mapping[str, Any] | Iterable[tuple[str, Any]], **changes: Any) -> str:
    """``?a=1&b=2`` of ``values`` with ``changes`` applied (None or '' drops a key)."""
    items = dict(values.items() if isinstance(values, Mapping) else values)
    items.update(changes)
    pairs: list[tuple[str, str]] = []
    for key, value in items.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else "?"
