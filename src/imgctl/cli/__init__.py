"""The ``imgctl`` command line: flags in, calls into the packages, results out.

``_app`` assembles the command tree from one module per command group; ``_flags`` holds the
flags several commands share, ``_output`` what they print, ``_exit`` the exit codes and error
lines. Heavy modules (httpx, rich, the registry client) are imported inside the commands, so
``imgctl --help`` stays fast.
"""

from __future__ import annotations

import os

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``imgctl`` console script."""
    from imgctl.cli._app import app
    from imgctl.cli._completion import COMPLETE_VAR, PROG_NAME, enable

    if os.environ.get(COMPLETE_VAR):  # a completion script asking what to offer
        enable()
    app(prog_name=PROG_NAME)


if __name__ == "__main__":  # pragma: no cover
    main()
