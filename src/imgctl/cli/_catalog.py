"""``imgctl catalog``: the catalog API from the command line, and ``catalog serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imgctl.cli._registry import EXIT_FAILED, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, fail
from imgctl.errors import ImgctlError


def _call(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """One request to the catalog API; errors become one line and an exit status."""
    import httpx

    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            params=params,
            json=body,
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}", EXIT_UNAVAILABLE)
    if response.status_code == 204:
        return None
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code >= 400:
        detail = document.get("error") if isinstance(document, dict) else None
        if isinstance(detail, dict):  # {"error": {"code", "message"}}
            detail = detail.get("message")
        message = str(detail or response.reason_phrase)
        if response.status_code == 404:
            fail(message, EXIT_NOT_FOUND)
        if response.status_code == 401:
            fail(f"{message} (check --token / IMGCTL_CATALOG_TOKEN)", EXIT_FAILED)
        if response.status_code == 403:
            fail(message, EXIT_FAILED)
        if response.status_code in (400, 422):
            fail(message, EXIT_INVALID)
        fail(f"{message} ({response.status_code})", EXIT_FAILED)
    return document


def _print_images(images: list[dict[str, Any]], json_output: bool) -> None:
    if json_output:
        print(json.dumps(images, indent=2))
        return
    for image in images:
        env = f" [{image['environment']}]" if image.get("environment") else ""
        tags = ", ".join(image.get("tags") or []) or "-"
        print(f"{image['name']}@{image['id']}{env}  {tags}  {image.get('updated_at', '')}")


def ls(url: str, filters: dict[str, str | None], sort: str, json_output: bool) -> None:
    """``imgctl catalog ls``."""
    params = {k: v for k, v in filters.items() if v}
    params["sort"] = sort
    _print_images(_call(url, "GET", "/images", params=params), json_output)


def get(url: str, image_id: str, json_output: bool) -> None:
    """``imgctl catalog get``."""
    image = _call(url, "GET", f"/images/{quote(image_id, safe='/@:')}")
    if json_output:
        print(json.dumps(image, indent=2))
    else:
        _print_images([image], json_output=False)


def put(
    url: str,
    token: str | None,
    image_id: str,
    name: str,
    tags: list[str],
    environment: str | None,
) -> None:
    """``imgctl catalog put``."""
    body: dict[str, Any] = {"id": image_id, "name": name, "tags": tags}
    if environment:
        body["environment"] = environment
    image = _call(url, "PUT", "/images", token=token, body=body)
    _print_images([image], json_output=False)


def rm(url: str, token: str | None, image_id: str) -> None:
    """``imgctl catalog rm``."""
    _call(url, "DELETE", f"/images/{quote(image_id, safe='/@:')}", token=token)


def serve(
    http_address: str,
    tokens_file: Path | None,
    database_url: str | None,
    allow_anonymous_writes: bool = False,
) -> None:
    """``imgctl catalog serve``: the catalog API and admission, without the gRPC server."""
    import asyncio
    import os

    from imgctl.server.app import serve_catalog

    try:
        import uvloop  # uvicorn[standard]: the faster event loop, as `uvicorn.run` would pick

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        pass
    try:
        asyncio.run(
            serve_catalog(
                http_address, tokens_file, database_url, os.environ, allow_anonymous_writes
            )
        )
    except ImgctlError as exc:
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
