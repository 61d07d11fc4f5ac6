"""The read-only web pages of the server and ``imgctl catalog serve``, and their JSON API.

One page is one module here (``_matrix`` the release matrix at ``/``, ``_audit``, ``_story``,
``_watches``, ``_charts``), each with a ``register(router, web)`` function that adds its HTML
route and its ``/api/...`` JSON route to the router :func:`create_web_router` builds. What every
page shares lives beside them: :mod:`._access` (who the caller is and which environments they may
read: bearer token, the login cookie, or --public-pages), :mod:`._render` (Jinja2 templates with
autoescape, security headers, 400 answers for bad filters, the static files) and
:mod:`._context` (the stores and the environments' pipeline order). docs/web.md tells how to add a
page.
"""

from __future__ import annotations

from ._access import Access, CatalogTokenAccess, OidcAccess, Viewer
from ._context import PIPELINE_ENV, WebContext, pipeline_order, read_pipeline
from ._render import BadFilter, Web
from ._router import PAGE_MODULES, create_web_router

__all__ = [
    "PAGE_MODULES",
    "PIPELINE_ENV",
    "Access",
    "BadFilter",
    "CatalogTokenAccess",
    "OidcAccess",
    "Viewer",
    "Web",
    "WebContext",
    "create_web_router",
    "pipeline_order",
    "read_pipeline",
]
