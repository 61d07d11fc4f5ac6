"""``imgctl catalog``: the catalog API from the command line, and ``catalog serve``.

The API's answers become exit codes through the one table (``imgctl.cli._exit``): an unknown
image 5, a refused request 2, a catalog that cannot be reached 6, anything else 1.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from imgctl.cli._exit import EXIT_NOT_FOUND, exit_code, fail, interrupted
from imgctl.cli._flags import (
    CATALOG_UNREACHABLE_HINT,
    AnonymousWritesOpt,
    CatalogUrlOpt,
    OutputOpt,
    PublicPagesOpt,
    RequireAttestationOpt,
    RequireSignatureOpt,
)
from imgctl.cli._output import Output, print_document
from imgctl.errors import (
    ImgctlError,
    NotAllowedError,
    NotAuthenticatedError,
    NotFoundError,
    TransportError,
    UsageError,
)

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
    images = call(url, "GET", "/images", params=params, command="imgctl catalog ls")
    _print_images(images, output)


@app.command("get")
def catalog_get(
    image_id: Annotated[str, typer.Argument(help="Image id (may contain / and @).")],
    url: CatalogUrlOpt = "http://localhost:8080",
    output: OutputOpt = Output.text,
) -> None:
    """Show one catalog image."""
    from urllib.parse import quote

    image = call(url, "GET", f"/images/{quote(image_id, safe='/@:')}", command="imgctl catalog get")
    _print_images([image], output)


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
    image = call(url, "PUT", "/images", token=token, body=body, command="imgctl catalog put")
    _print_images([image], Output.text)


@app.command("rm")
def catalog_rm(
    image_id: Annotated[str, typer.Argument(help="Image id.")],
    environment: Annotated[
        list[str] | None,
        typer.Option(
            "--environment",
            "-e",
            help="Withdraw the image from this environment only (repeatable).",
        ),
    ] = None,
    all_environments: Annotated[
        bool,
        typer.Option("--all-environments", help="Withdraw it from every environment."),
    ] = False,
    url: CatalogUrlOpt = "http://localhost:8080",
    token: CatalogTokenOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Withdraw an image from one or more environments (-e ENV) or from all of them."""
    from urllib.parse import quote

    if bool(environment) == all_environments:
        raise typer.BadParameter(
            "name the environments to withdraw the image from with --environment/-e ENV "
            "(repeatable), or remove it from every one with --all-environments"
            if not all_environments
            else "--environment/-e and --all-environments exclude each other: give one",
            param_hint="'--environment' / '--all-environments'",
        )
    path = f"/images/{quote(image_id, safe='/@:')}"
    removed: list[dict[str, Any]] = []
    absent: list[str] = []
    told = True  # whether the server said what it removed (imagelist and older imgctl do not)
    wheres: list[str | None] = [*environment] if environment else [None]
    for where in wheres:
        params = None if where is None else {"environment": where}
        answer = call(
            url,
            "DELETE",
            path,
            token=token,
            params=params,
            prefer="return=representation",
            command="imgctl catalog rm",
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("removed"), list):
            told = False
            continue
        entries = [entry for entry in answer["removed"] if isinstance(entry, dict)]
        removed.extend(entries)
        if not entries:
            absent.append(where or "any environment")
    if output is not Output.text:
        print_document(
            {"id": image_id, "removed": removed, "absent": absent} if told else {"id": image_id},
            output,
        )
    else:
        for entry in removed:
            where = entry.get("environment") or "(no environment)"
            print(f"removed {entry.get('id', image_id)} ({entry.get('name', '?')}) from {where}")
        if not told:
            print(
                f"removed {image_id} from {', '.join(environment or ['every environment'])} "
                f"(the catalog at {url} does not say which entries it held)"
            )
    if absent:
        digest = image_id.rpartition("@")[2]
        listing = f" --digest {digest}" if digest.startswith("sha256:") else ""
        fail(
            f"no entry of {image_id} in {', '.join(absent)}; see where it is with "
            f"imgctl catalog ls{listing}",
            EXIT_NOT_FOUND,
        )


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
        interrupted()
    if output is not Output.text:
        print_document({"file": str(file), "format": read.format, **result.as_json()}, output)
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
        # Like imgctl server: a configuration that cannot work (every problem listed) is exit
        # status 2, a database that cannot be opened 1.
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        interrupted()


def call(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    prefer: str | None = None,
    command: str | None = None,
) -> Any:
    """One request to the server's HTTP side; an error is one line and its exit code.

    ``command`` (``imgctl catalog ls``) is the one whose --help a refused request points to.
    """
    try:
        return _request(
            url,
            method,
            path,
            token=token,
            params=params,
            body=body,
            prefer=prefer,
            command=command,
        )
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
    prefer: str | None = None,
    command: str | None = None,
) -> Any:
    import httpx

    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if prefer:
        headers["Prefer"] = prefer
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
        raise TransportError(f"cannot reach {url}: {exc}", hint=CATALOG_UNREACHABLE_HINT) from exc
    if response.status_code == 204:
        return None
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code >= 400:
        message, ours = _error_message(document)
        raise _refusal(
            response.status_code,
            message or response.reason_phrase,
            ours,
            url,
            command or "imgctl COMMAND",
        )
    return document


_MAX_ERROR_MESSAGE: Final = 2000
"""Longest message of an error answer printed; a longer one is cut (bounded input)."""


def _error_message(document: Any) -> tuple[str | None, bool]:
    """The message of an error answer, and whether it is the catalog's own error shape.

    imgctl's catalog answers ``{"error": {"code", "message"}}``; FastAPI itself (a path that is
    not the catalog's, a method it does not serve) ``{"detail": str}`` or
    ``{"detail": [{"loc", "msg"}...]}``. Never a dict's repr: a shape not known gives None.
    """
    if not isinstance(document, dict):
        return None, False
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:_MAX_ERROR_MESSAGE], True
    if isinstance(error, str):
        return error[:_MAX_ERROR_MESSAGE], True
    detail = document.get("detail")
    if isinstance(detail, str):
        return detail[:_MAX_ERROR_MESSAGE], False
    if isinstance(detail, list):
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc') or ()) or 'request'}: "
            f"{item.get('msg')}"
            for item in detail[:20]
            if isinstance(item, dict) and isinstance(item.get("msg"), str)
        ]
        return "; ".join(problems)[:_MAX_ERROR_MESSAGE] or None, False
    return None, False


def _refusal(
    status: int, message: str, ours: bool, url: str, help_command: str = "imgctl COMMAND"
) -> ImgctlError:
    """The error (hence exit code) of an HTTP error answer of the catalog API, with a hint."""
    if not ours and status in (404, 405):
        # FastAPI's own answer: the URL reached a web server, but not the catalog's API.
        return ImgctlError(
            f"{message} ({status})",
            hint=f"is {url} the catalog's base URL? check --catalog-url (IMGCTL_CATALOG_URL)",
        )
    if status == 404:
        return NotFoundError(
            message, status=status, hint="see what the catalog holds with imgctl catalog ls"
        )
    if status in (400, 413, 422):
        return UsageError(message, hint=f"see {help_command} --help")
    # README's one table: a token missing or refused exits 3, a write not allowed 4.
    if status == 401:
        return NotAuthenticatedError(message, hint="check --token / IMGCTL_CATALOG_TOKEN")
    if status == 403:
        return NotAllowedError(message, hint="ask the catalog's operator for a write token")
    return ImgctlError(
        f"{message} ({status})", hint="the catalog server failed: see its log, then retry"
    )


def _print_images(images: list[dict[str, Any]], output: Output) -> None:
    if output is not Output.text:
        # The catalog's objects as its API answers them: imagelist's field names
        # (created_at, updated_at), the one exception to camelCase in machine output.
        print_document(images, output)
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
