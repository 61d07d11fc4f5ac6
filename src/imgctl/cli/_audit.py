"""``imgctl audit ls``: the server's audit trail, read through its HTTP API (``/api/audit``).

The command asks the server, never the database: the server applies the caller's rights (only
environments they may read), and opening the database from a client would migrate its schema
(docs/web.md, "Audit trail"). The token is ``--token``, else the one ``imgctl token`` gets with
the same login flags (cached), else none (a server with --public-pages needs none). Errors end
the command through the exit code table: a bad filter 2, no or a rejected token 3, not allowed
4, a server that cannot be reached or cannot read its database 6.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import (
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_UNAUTHENTICATED,
    EXIT_UNAVAILABLE,
    fail,
)
from imgctl.cli._flags import (
    CATALOG_UNREACHABLE_HINT,
    CachedTokenRefused,
    CatalogUrlOpt,
    ClientCertOptForServer,
    ClientKeyOptForServer,
    Login,
    OutputOpt,
    ServerCaOpt,
    ServerOpt,
    TlsOpt,
    drop_cached_token,
    login_command,
)
from imgctl.cli._output import Output, camel_keys, print_document

if TYPE_CHECKING:
    from imgctl.identity.exchange import LoginSettings

__all__ = ["app"]

app = typer.Typer(
    name="audit",
    help="The audit trail: every request the promotion server answered.",
    no_args_is_help=True,
)

_PAGE_LIMIT = 500  # the server's most events per page (imgctl.store.MAX_PAGE)


@app.command("ls")
@login_command
def audit_ls(
    login: Login,
    user: Annotated[
        str | None, typer.Option("--user", help="Only this caller (OIDC subject or email).")
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option("--environment", "-e", help="Only promotions from or to this environment."),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option("--result", help="Only this result: succeeded, denied, failed or invalid."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this RFC 3339 time on (2025-03-01T00:00:00Z)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before this RFC 3339 time (not included).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=_PAGE_LIMIT, help="Events per page.")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Go on after a previous page (its next cursor)."),
    ] = None,
    url: CatalogUrlOpt = "http://localhost:8080",
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="IMGCTL_WEB_TOKEN",
            help="Bearer token for the server's pages and API (default: the login flags' "
            "token, as imgctl token prints it, from the issuer --dex-url names or the one the "
            "imgctl server (--server) names; none without either).",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """List audit events, newest first: who asked for what, and how it ended."""
    params = {
        "user": user,
        "environment": environment,
        "result": result,
        "since": since,
        "until": until,
        "limit": str(limit),
        "cursor": cursor,
    }
    query = {k: v for k, v in params.items() if v}
    connection = (server, tls, ca_cert, client_cert, client_key)
    bearer, settings, cached = _bearer(token, login, connection)
    try:
        document = _get(url, query, bearer, cached=cached)
    except CachedTokenRefused as refused:
        # As promote: a cached token can go bad before it expires; sign in once more.
        assert settings is not None
        drop_cached_token(settings, str(refused))
        document = _get(url, query, login.token(settings).token, cached=False)
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        fail(f"{url}/api/audit did not answer audit events; is it an imgctl server?", EXIT_FAILED)
    if output is not Output.text:
        # The API's page (docs/web.md), its keys in machine output's camelCase: request_id is
        # requestId, next_cursor nextCursor.
        print_document(camel_keys(document), output)
        return
    _print_events(events)
    next_cursor = document.get("next_cursor")
    if next_cursor:
        print(f"more: add --cursor {next_cursor}", file=sys.stderr)


def _bearer(
    token: str | None,
    login: Login,
    connection: tuple[str | None, bool | None, Path | None, Path | None, Path | None],
) -> tuple[str | None, LoginSettings | None, bool]:
    """The token to send, the login settings it came from, and whether it came from the cache.

    ``--token``; else the login flags' token when they name an issuer or an imgctl server is
    configured (which names its issuer and audience, as for ``imgctl token``); else none.
    """
    if token:
        return token, None, False
    from imgctl.cli._promote import server_login_settings
    from imgctl.cli._settings import resolve
    from imgctl.errors import ImgctlError

    try:
        issuer, server = resolve(login.dex_url, "dex_url"), resolve(connection[0], "server")
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)
    if not issuer and not server:
        return None, None, False
    settings, _ = server_login_settings(login, *connection)
    issued = login.token(settings)
    return issued.token, settings, issued.source == "cache"


def _get(url: str, params: dict[str, str], token: str | None, *, cached: bool) -> Any:
    import httpx

    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(
            url.rstrip("/") + "/api/audit", params=params, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}; {CATALOG_UNREACHABLE_HINT}", EXIT_UNAVAILABLE)
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code == 200:
        return document
    detail = document.get("error") if isinstance(document, dict) else None
    message = detail.get("message") if isinstance(detail, dict) else None
    message = str(message or response.reason_phrase or response.status_code)
    if response.status_code == 400:
        fail(message, EXIT_INVALID)
    if response.status_code == 401 and cached:
        raise CachedTokenRefused(message)
    if response.status_code == 401:
        how = "the token was refused" if token else "no token was sent"
        fail(
            f'{message} ({how}: pass --token, e.g. --token "$(imgctl token)", or the '
            "login flags with --dex-url, or --server (IMGCTL_SERVER) to ask the server for its "
            "issuer)",
            EXIT_UNAUTHENTICATED,
        )
    if response.status_code == 403:
        fail(message, EXIT_DENIED)
    if response.status_code in (502, 503, 504):
        fail(message, EXIT_UNAVAILABLE)
    if response.status_code == 404:
        fail(f"{url} has no audit API (/api/audit): is it an imgctl server?", EXIT_FAILED)
    fail(f"{message} ({response.status_code})", EXIT_FAILED)


def _print_events(events: list[Any]) -> None:
    """One line per event, columns aligned: time, result, action, who, route, what, request."""
    rows = [_row(event) for event in events if isinstance(event, dict)]
    if not rows:
        print("no audit events", file=sys.stderr)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def _row(event: dict[str, Any]) -> list[str]:
    source, destination = event.get("source_env"), event.get("destination_env")
    route = f"{source or '?'} -> {destination or '?'}" if source or destination else "-"
    what = str(event.get("reference") or "-")
    digest = event.get("digest")
    if digest:
        what += f" {str(digest)[:19]}"
    notes = [f"request {event.get('request_id', '')}"]
    for field, word in (("signed", "signed"), ("attested", "attested")):
        if isinstance(event.get(field), bool):
            notes.append(word if event[field] else f"not {word}")
    if event.get("error"):
        code = f"{event['error_code']}: " if event.get("error_code") else ""
        notes.append(f"{code}{event['error']}")
    who = event.get("email") or event.get("subject") or "-"
    return [
        str(event.get("time", "")),
        str(event.get("result", "")),
        str(event.get("action", "")),
        str(who),
        route,
        what,
        "; ".join(notes),
    ]
