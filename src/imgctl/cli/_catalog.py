"""``imgctl catalog``: the catalog API from the command line, and ``catalog serve``.

The API's answers become exit codes through the one table (``imgctl.cli._exit``): an unknown
image 5, a refused request 2, a catalog that cannot be reached 6, anything else 1.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import EXIT_FAILED, EXIT_INTERRUPTED, exit_code, fail
from imgctl.cli._flags import (
    AnonymousWritesOpt,
    CatalogUrlOpt,
    OutputOpt,
    PublicPagesOpt,
    RequireAttestationOpt,
    RequireSignatureOpt,
)
from imgctl.cli._output import Output, print_json
from imgctl.errors import ImgctlError, NotFoundError, TransportError, UsageError

if TYPE_CHECKING:
    from imgctl.store import ImportImage, ImportResult

__all__ = ["app", "call"]

app = typer.Typer(
    name="catalog",
    help="The catalog: which images were promoted where (imagelist-compatible API).",
    no_args_is_help=True,
)

CatalogTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="IMGCTL_CATALOG_TOKEN", help="Bearer token for writes (tokens file)."
    ),
]


@app.command("ls")
def catalog_ls(
    url: CatalogUrlOpt = "http://localhost:8080",
    name: Annotated[str | None, typer.Option("--name", help="Exact image name.")] = None,
    environment: Annotated[str | None, typer.Option("--environment", "-e")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    digest: Annotated[str | None, typer.Option("--digest")] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="created_at, updated_at, name or id (descending).")
    ] = "updated_at",
    output: OutputOpt = Output.text,
) -> None:
    """List catalog images."""
    filters = {"name": name, "environment": environment, "tag": tag, "digest": digest}
    params = {k: v for k, v in filters.items() if v}
    params["sort"] = sort
    _print_images(call(url, "GET", "/images", params=params), output is Output.json)


@app.command("get")
def catalog_get(
    image_id: Annotated[str, typer.Argument(help="Image id (may contain / and @).")],
    url: CatalogUrlOpt = "http://localhost:8080",
    output: OutputOpt = Output.text,
) -> None:
    """Show one catalog image."""
    from urllib.parse import quote

    image = call(url, "GET", f"/images/{quote(image_id, safe='/@:')}")
    if output is Output.json:
        print_json(image)
    else:
        _print_images([image], json_output=False)


@app.command("put")
def catalog_put(
    image_id: Annotated[str, typer.Argument(help="Image id.")],
    name: Annotated[str, typer.Option("--name", help="Image name (repository).")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    environment: Annotated[str | None, typer.Option("--environment", "-e")] = None,
    url: CatalogUrlOpt = "http://localhost:8080",
    token: CatalogTokenOpt = None,
) -> None:
    """Create an image, or replace the tags of an existing one."""
    body: dict[str, Any] = {"id": image_id, "name": name, "tags": tag or []}
    if environment:
        body["environment"] = environment
    image = call(url, "PUT", "/images", token=token, body=body)
    _print_images([image], json_output=False)


@app.command("rm")
def catalog_rm(
    image_id: Annotated[str, typer.Argument(help="Image id.")],
    url: CatalogUrlOpt = "http://localhost:8080",
    token: CatalogTokenOpt = None,
) -> None:
    """Delete an image from the catalog."""
    from urllib.parse import quote

    call(url, "DELETE", f"/images/{quote(image_id, safe='/@:')}", token=token)


@app.command("import")
def catalog_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON lines of catalog objects, GET /images's JSON list, or a cip --snapshot "
            "(YAML, JSON or CSV).",
            dir_okay=False,
        ),
    ],
    environment: Annotated[
        str | None,
        typer.Option(
            "--environment",
            "-e",
            help="Environment of entries that name none (snapshots); entries naming another "
            "one are refused.",
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="REGISTRY\\[/PATH] a snapshot was taken of (as given to cip --snapshot); put "
            "before its names.",
        ),
    ] = None,
    file_format: Annotated[
        str,
        typer.Option("--format", help="auto, jsonl, json, snapshot (YAML) or csv."),
    ] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and count; write nothing.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database (default: $IMGCTL_DATABASE_URL, else SQLite in the state directory).",
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Import many images into the catalog's database at once: all of them, or none."""
    import asyncio
    import os

    from imgctl.catalog.imports import ImportFileError, read_import_file

    try:
        read = read_import_file(
            file, environment=environment, registry=registry, format=file_format
        )
    except ImportFileError as exc:
        for bad in exc.bad:
            print(f"{exc.path}:{bad.line}: {bad.message}", file=sys.stderr)
        if exc.count > len(exc.bad):
            print(f"... and {exc.count - len(exc.bad)} more bad lines", file=sys.stderr)
        fail(str(exc), exit_code(exc))
    except ImgctlError as exc:
        fail(str(exc), exit_code(exc))
    try:
        result = asyncio.run(_import(read.images, database_url, os.environ, dry_run))
    except ImgctlError as exc:
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    if output is Output.json:
        print_json({"file": str(file), "format": read.format, **result.as_json()})
        return
    into = ", ".join(result.environments) or (environment or "-")
    changes = [
        f"{count} {what}"
        for count, what in (
            (result.tagged, "gained tags"),
            (result.untagged, "lost a tag to another digest"),
        )
        if count
    ]
    detail = f"{result.new} new, {result.present} already present"
    detail += f"; {', '.join(changes)}" if changes else ""
    verb = "would import" if dry_run else "imported"
    tail = " (dry run: nothing written)" if dry_run else ""
    print(f"{verb} {result.images} images ({detail}) into {into}{tail}")


async def _import(
    images: Sequence[ImportImage],
    database_url: str | None,
    environ: Mapping[str, str],
    dry_run: bool,
) -> ImportResult:
    """Open the database (migrating it, as every imgctl process does) and import."""
    from imgctl.server.app import ServerSettings
    from imgctl.store import CatalogStore
    from imgctl.store import database_url as default_url

    if database_url is None:
        state_dir = ServerSettings().resolve(environ).state_dir
        assert state_dir is not None
        database_url = default_url(environ, state_dir)
    store = await CatalogStore.open(database_url)
    try:
        return await store.import_images(images, dry_run=dry_run)
    finally:
        await store.aclose()


@app.command("serve")
def catalog_serve(
    http_address: Annotated[
        str, typer.Option("--http-address", help="HOST:PORT to listen on.")
    ] = "127.0.0.1:8080",
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="imagelist tokens YAML for writes (watched). Default: $IMGCTL_TOKENS_FILE.",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database (default: $IMGCTL_DATABASE_URL, else SQLite in the state directory).",
        ),
    ] = None,
    allow_anonymous_writes: AnonymousWritesOpt = False,
    require_signature: RequireSignatureOpt = None,
    require_attestation: RequireAttestationOpt = None,
    public_pages: PublicPagesOpt = False,
) -> None:
    """Serve the catalog API, the admission webhook and the web pages (no gRPC)."""
    import asyncio
    import os

    from imgctl._internal.listen import fast_event_loop
    from imgctl.server.app import serve_catalog

    fast_event_loop()
    try:
        asyncio.run(
            serve_catalog(
                http_address,
                tokens_file,
                database_url,
                os.environ,
                allow_anonymous_writes,
                require_signature=tuple(require_signature or ()),
                require_attestation=tuple(require_attestation or ()),
                public_pages=public_pages,
            )
        )
    except ImgctlError as exc:
        # Like imgctl server: a configuration that cannot work is exit status 1.
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


def call(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """One request to the server's HTTP side; an error is one line and its exit code."""
    try:
        return _request(url, method, path, token=token, params=params, body=body)
    except ImgctlError as exc:
        fail(str(exc), exit_code(exc))


def _request(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None,
    params: dict[str, str] | None,
    body: dict[str, Any] | None,
) -> Any:
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
        raise TransportError(f"cannot reach {url}: {exc}") from exc
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
        raise _refusal(response.status_code, str(detail or response.reason_phrase))
    return document


def _refusal(status: int, message: str) -> ImgctlError:
    """The error class (hence exit code) of an HTTP error answer of the catalog API."""
    if status == 404:
        return NotFoundError(message, status=status)
    if status in (400, 422):
        return UsageError(message)
    # 401 and 403 exit 1 as before, not the table's 3 and 4 (ImgctlError, not its subclasses).
    if status == 401:
        return ImgctlError(f"{message} (check --token / IMGCTL_CATALOG_TOKEN)")
    if status == 403:
        return ImgctlError(message)
    return ImgctlError(f"{message} ({status})")


def _print_images(images: list[dict[str, Any]], json_output: bool) -> None:
    if json_output:
        print_json(images)
        return
    for image in images:
        env = f" [{image['environment']}]" if image.get("environment") else ""
        tags = ", ".join(image.get("tags") or []) or "-"
        line = f"{image['name']}@{image['id']}{env}  {tags}  {image.get('updated_at', '')}"
        # What the promotion server said of its promotion; absent (not known) shows nothing.
        trust = [
            word if image[field] else f"not {word}"
            for field, word in (("signed", "signed"), ("attested", "attested"))
            if isinstance(image.get(field), bool)
        ]
        print(f"{line}  {', '.join(trust)}" if trust else line)
