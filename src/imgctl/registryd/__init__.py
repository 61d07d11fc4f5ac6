"""An embedded OCI distribution registry (spec v1.1) on the filesystem, for demos and tests.

It shares no code with the client (``imgctl.remote``): it imports ``imgctl.oci`` (the grammar
of names, tags and digests), ``imgctl.errors`` and ``imgctl._internal`` only, so serving does not
load the client stack.

``create_app`` builds the ASGI application; ``serve`` runs it with uvicorn until SIGTERM or
SIGINT. ``imgctl registry serve`` is the command line; docs/registry.md describes what it
implements and the storage layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgctl._internal.listen import bound_address, listen
from imgctl._internal.uvicorn_signals import serve_until_signalled
from imgctl.errors import UsageError
from imgctl.registryd._app import RegistryApp
from imgctl.registryd._htpasswd import Htpasswd
from imgctl.registryd._http import ASGIApp
from imgctl.registryd._storage import Storage

__all__ = ["ASGIApp", "create_app", "serve"]

# Seconds running requests get to finish once a stop signal arrived.
_GRACE = 10


def create_app(root: Path, *, htpasswd: Path | None = None) -> ASGIApp:
    """The registry as an ASGI app storing under ``root`` (Basic auth with ``htpasswd``)."""
    auth = Htpasswd.load(htpasswd) if htpasswd is not None else None
    try:
        storage = Storage(root)
    except OSError as exc:
        raise UsageError(
            f"cannot use {root} as the registry root: {exc.strerror or exc}",
            hint="give a directory this user can create and write",
        ) from None
    return RegistryApp(storage, auth)


async def serve(
    root: Path,
    address: str,
    *,
    htpasswd: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the registry on ``address`` until SIGTERM (returns) or SIGINT (KeyboardInterrupt)."""
    import uvicorn

    app = create_app(root, htpasswd=htpasswd)
    sock = listen("--address", address, "127.0.0.1:5000")
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        # "warning" would log every TLS hello that clients like skopeo try before plain HTTP.
        log_level="error",
        server_header=False,
        timeout_graceful_shutdown=_GRACE,
    )
    server = uvicorn.Server(config)
    try:
        if on_ready is not None:
            on_ready(bound_address(sock))
        interrupted = await serve_until_signalled(server, [sock])
    finally:
        sock.close()
    if interrupted:
        raise KeyboardInterrupt
