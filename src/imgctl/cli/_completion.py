"""``imgctl completion bash|zsh|fish``: print a shell completion script, as kubectl does.

The script calls ``imgctl`` back with ``_IMGCTL_COMPLETE`` set (click's shell completion, in
Typer's format); ``enable`` registers the shells' completion classes only in that case, so an
ordinary start-up pays nothing for completion. The scripts and classes are Typer's own (its
``--install-completion`` uses them; typer is pinned below 0.29, see docs/architecture.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["COMPLETE_VAR", "PROG_NAME", "app", "enable"]

PROG_NAME = "imgctl"
# click's convention: _<PROG>_COMPLETE, the variable the printed scripts set.
COMPLETE_VAR = "_IMGCTL_COMPLETE"

app = typer.Typer()


class Shell(StrEnum):
    """Shells imgctl prints a completion script for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command("completion")
def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", case_sensitive=False)],
) -> None:
    """Print a shell completion script: source <(imgctl completion bash)."""
    from typer._completion_shared import get_completion_script

    print(get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell.value))


def enable() -> None:
    """Let ``imgctl`` answer the completion requests of the scripts (only they set the variable)."""
    from typer._completion_classes import completion_init

    completion_init()
