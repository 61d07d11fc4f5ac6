"""``imgctl registry serve``: the embedded registry from the command line.

SIGTERM stops it with exit status 0, Ctrl-C with 130; a mistake at start is one line and exit
status 2 (docs/registry.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from imgctl.cli._exit import exit_code, fail, interrupted, warn
from imgctl.errors import ImgctlError

__all__ = ["app"]

app = typer.Typer(
    name="registry",
    help="Registry logins (docker's config.json), and an embedded OCI registry for tests.",
    no_args_is_help=True,
)


@app.command("serve")
def registry_serve(
    root: Annotated[
        Path,
        typer.Option("--root", help="Directory holding the registry's blobs, manifests and tags."),
    ],
    address: Annotated[
        str, typer.Option("--address", help="HOST:PORT to listen on.")
    ] = "127.0.0.1:5000",
    htpasswd: Annotated[
        Path | None,
        typer.Option(
            "--htpasswd",
            help="Require Basic auth with these bcrypt users (htpasswd -B).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve an OCI distribution registry (spec v1.1) from --root until Ctrl-C or SIGTERM."""
    import asyncio

    from imgctl import registryd
    from imgctl._internal.hosts import is_loopback
    from imgctl._internal.listen import fast_event_loop
    from imgctl._internal.startup import listening_line

    fast_event_loop()

    def ready(bound: str) -> None:
        if not is_loopback(bound):
            if htpasswd is None:
                warn(f"anyone who can reach {bound} can push, pull and delete: pass --htpasswd")
            else:
                warn(f"passwords cross the network in clear text to {bound} (plain HTTP)")
        print(listening_line("registry serve", [("http", bound)]), file=sys.stderr, flush=True)

    try:
        asyncio.run(registryd.serve(root, address, htpasswd=htpasswd, on_ready=ready))
    except ImgctlError as exc:
        # docs/registry.md: a mistake at start (a UsageError) exits 2.
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        interrupted()
