"""``imgctl scan``: scan watches once or on their intervals; ``scan status`` asks a server.

Scanning on the intervals follows the watches file like the server does: a new version is put
in force without a restart, and one that does not load is logged while the last good one stays.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from imgctl.cli._catalog import call
from imgctl.cli._exit import EXIT_FAILED, EXIT_INVALID, fail, interrupted
from imgctl.cli._flags import CatalogUrlOpt, OutputOpt
from imgctl.cli._output import Output, print_document
from imgctl.errors import ImgctlError

__all__ = ["app", "print_watches"]

app = typer.Typer(
    name="scan",
    help="Scan repositories for tags and apply tag policies (Flux semantics).",
    invoke_without_command=True,
)


@app.callback()
def scan(
    context: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="IMGCTL_WATCHES_FILE",
            help="Watches YAML (see docs/scanning.md).",
            dir_okay=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Scan every watch once, print the result, exit.")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Scan the watches of --config: once (--once), or on their intervals until Ctrl-C."""
    if context.invoked_subcommand is not None:
        return
    if config is None:
        fail("give the watches file: imgctl scan --config watches.yaml [--once]", EXIT_INVALID)
    _scan(config, once=once, output=output)


@app.command("status")
def scan_status(
    url: CatalogUrlOpt = "http://localhost:8080",
    output: OutputOpt = Output.text,
) -> None:
    """Show the watches of a running server (its GET /scan)."""
    document = call(url, "GET", "/scan")
    watches = document.get("watches") if isinstance(document, dict) else None
    if not isinstance(watches, list):
        fail(f"{url}/scan did not answer a watch list; is it an imgctl server?", EXIT_FAILED)
    watches_file = document.get("watchesFile")
    if output is not Output.text:
        body = {"watchesFile": watches_file} if isinstance(watches_file, dict) else {}
        print_document(body | {"watches": watches}, output)
        return
    print_watches(watches, Output.text)
    if isinstance(watches_file, dict):
        for condition in watches_file.get("conditions") or []:
            if condition.get("type") == "Loaded" and condition.get("status") != "True":
                print(str(condition.get("message")), file=sys.stderr)


def _load(config: Path, *, follow: bool) -> Any:
    from imgctl.scan.reload import WatchesFile
    from imgctl.scan.watches import load_watches

    try:
        return WatchesFile(config) if follow else load_watches(config)
    except ImgctlError as exc:
        fail(str(exc), EXIT_INVALID)


def _scan(config: Path, *, once: bool, output: Output) -> None:
    """Scan once and print the table, or scan on the intervals until a signal."""
    import asyncio
    import logging

    watches = _load(config, follow=not once)
    if once:
        # The table and its notes say what failed; the scanner's log lines would repeat it.
        logging.getLogger("imgctl.scan").addHandler(logging.NullHandler())
        logging.getLogger("imgctl.scan").propagate = False
        statuses = asyncio.run(_scan_once(watches))
        print_watches(statuses, output)
        failed = [s for s in statuses if not s["suspend"] and _ready(s) != "True"]
        if failed:
            raise SystemExit(EXIT_FAILED)
        return
    # imgctl's own lines only: the root logger at INFO would add one httpx line per request.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    ours = logging.getLogger("imgctl")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    try:
        asyncio.run(_scan_forever(watches))
    except KeyboardInterrupt:
        interrupted()


async def _scan_once(watches: Any) -> list[dict[str, Any]]:
    from imgctl.scan.scanner import Scanner

    async with Scanner(watches) as scanner:
        return [status.as_json() for status in await scanner.scan_all()]


async def _scan_forever(watches_file: Any) -> None:
    import asyncio
    import signal

    from imgctl.scan.scanner import Scanner

    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    async with Scanner(watches_file.config, watches_file=watches_file) as scanner:
        await scanner.run(stop)
    if received[:1] == [signal.SIGINT]:
        # Stopped cleanly either way; Ctrl-C still exits 130 (SIGTERM, how a service is
        # stopped, exits 0).
        raise KeyboardInterrupt


def _ready(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


def _reason(status: dict[str, Any]) -> tuple[str, str]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return "", ""


def print_watches(statuses: list[dict[str, Any]], output: Output) -> None:
    """A table (name, image, ready, tags, latest) or ``{"watches": [...]}`` (json, yaml)."""
    if output is not Output.text:
        print_document({"watches": statuses}, output)
        return
    rows = [("NAME", "IMAGE", "READY", "TAGS", "LATEST", "DIGEST", "LAST SCAN")]
    notes: list[str] = []
    for item in statuses:
        result = item.get("lastScanResult") or {}
        policy = item.get("policy") or {}
        digest = str(policy.get("latestDigest") or "")
        ready = "Suspended" if item.get("suspend") else _ready(item)
        rows.append(
            (
                str(item.get("name")),
                str(item.get("canonicalImageName")),
                ready,
                str(result.get("tagCount", "-")),
                str(policy.get("latestTag") or "-"),
                digest[:19] if digest else "-",
                str(result.get("scanTime") or "-"),
            )
        )
        reason, message = _reason(item)
        if ready not in ("True", "Suspended"):
            notes.append(f"{item.get('name')}: {reason}: {message}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for note in notes:
        print(note, file=sys.stderr)
