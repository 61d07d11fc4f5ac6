"""``imgctl demo``: the whole product, started on loopback ports and used once, step by step.

Two embedded registries (dev, prod), the built-in issuer, a private ssh-agent holding a fresh
key (or the key file when there is no agent), and ``imgctl server`` with SQLite all run as child
processes under one work directory. The demo pushes two images to dev, then runs the real
client (``imgctl auth-check``, ``imgctl promote``) and shows what every part recorded.

- ``_supervise``: the children (own sessions, cleanup on any exit), signals, readiness;
- ``_setup``: the work directory, the key, the configs, the children's environments;
- ``_story``: the steps, what they print and check, and ``run``;
- ``_image``: the demo images, built in memory.

Only the command's definition is imported at start-up; the rest when the demo runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer()


@app.command("demo")
def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Leave everything running and print commands to try; Ctrl-C stops it."
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Use this (new or empty) directory instead of a temporary one, and keep it.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the whole product on loopback ports: registries, issuer, server, a promotion."""
    from imgctl.cli.demo._story import run

    run(keep=keep, workdir=workdir)
