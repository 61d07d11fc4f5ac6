"""``imgctl registry serve``: the embedded registry from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from imgctl.cli._registry import EXIT_FAILED, EXIT_INVALID, fail, warn
from imgctl.errors import ImgctlError, UsageError


def serve(root: Path, address: str, htpasswd: Path | None) -> None:
    """Run the registry until SIGTERM (exit 0) or Ctrl-C (exit 130)."""
    import asyncio

    from imgctl import registryd
    from imgctl._internal.hosts import is_loopback

    try:
        import uvloop  # uvicorn[standard]: the faster event loop, as `uvicorn.run` would pick

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        pass

    def ready(bound: str) -> None:
        if not is_loopback(bound):
            if htpasswd is None:
                warn(f"anyone who can reach {bound} can push, pull and delete: pass --htpasswd")
            else:
                warn(f"passwords cross the network in clear text to {bound} (plain HTTP)")
        print(
            f"imgctl registry serving {root.resolve()} on http://{bound}",
            file=sys.stderr,
            flush=True,
        )

    try:
        asyncio.run(registryd.serve(root, address, htpasswd=htpasswd, on_ready=ready))
    except UsageError as exc:
        fail(str(exc), EXIT_INVALID)
    except ImgctlError as exc:
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
