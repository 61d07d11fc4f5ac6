"""The ``imgctl`` command line: flags in, calls into the packages, results out.

``_app`` assembles the command tree from one module per command group; ``_flags`` holds the
flags several commands share, ``_output`` what they print, ``_exit`` the exit codes and error
lines. Heavy modules (httpx, rich, the registry client) are imported inside the commands, so
``imgctl --help`` stays fast.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``imgctl`` console script."""
    from imgctl.cli._app import app

    app(prog_name="imgctl")


if __name__ == "__main__":  # pragma: no cover
    main()
