"""Every command and subcommand answers ``--help``, and no help text is read as Rich markup."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer
from rich.errors import MarkupError
from rich.markup import render
from typer.testing import CliRunner

from imgctl.cli._app import app

ROOT = typer.main.get_command(app)


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Typer vendors click, so the group classes are Typer's own: walk by the attribute.
    found = [path]
    for name, command in sorted(getattr(group, "commands", {}).items()):
        found.extend(_commands(command, (*path, name)))
    return found


def _command(path: tuple[str, ...]) -> Any:
    command: Any = ROOT
    for name in path:
        command = command.commands[name]
    return command


COMMANDS = _commands(ROOT)


def test_the_tree_is_walked() -> None:
    # The walk reaches nested groups; a broken walk would make the tests below vacuous.
    assert ("cip",) in COMMANDS
    assert ("catalog", "ls") in COMMANDS
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "imgctl")
def test_help_renders(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="imgctl")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Usage:" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "imgctl")
def test_help_texts_are_plain(path: tuple[str, ...]) -> None:
    # Rich reads '[word]' as a style and '[/word]' as a closing tag: a help text such as
    # 'REGISTRY[/PATH]' crashes --help, 'host[port]' silently loses a word. Write '\\[' instead.
    command = _command(path)
    texts = [command.help or "", command.short_help or "", command.epilog or ""]
    texts += [getattr(param, "help", None) or "" for param in command.params]
    for text in texts:
        try:
            plain = render(text).plain
        except MarkupError as error:
            pytest.fail(f"help text {text!r} is invalid Rich markup: {error}")
        assert plain == text.replace("\\[", "["), f"markup in help text: {text!r}"


# What only running a command needs. Every --help must work without loading any of it: a
# command's group module is imported for its --help and completion, so one top-level import
# there would slow down each of them (tests/unit/test_cli_startup.py checks each help alone).
_HEAVY = (
    "alembic",
    "asyncio",
    "boto3",
    "botocore",
    "cryptography",
    "fastapi",
    "google",
    "grpc",
    "httpcore",
    "httpx",
    "rich.progress",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "yaml",
)

_EVERY_HELP = """
import sys
import typer
from typer.testing import CliRunner
from imgctl.cli._app import app

def walk(group, path=()):
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from walk(command, (*path, name))

paths = list(walk(typer.main.get_command(app)))
for path in paths:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="imgctl")
    assert result.exit_code == 0, (path, result.output)
print(len(paths))
print(" ".join(sorted(sys.modules)))
"""


def test_every_help_leaves_the_packages_unloaded() -> None:
    # A fresh interpreter: this test process has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", _EVERY_HELP], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    count, modules = result.stdout.splitlines()
    assert int(count) == len(COMMANDS)
    loaded = set(modules.split())
    assert sorted(m for m in loaded if m.split(".")[0] in _HEAVY or m in _HEAVY) == []
    # Of imgctl itself, only the command line, the error classes it names and the version
    # constants setuptools-scm writes (never setuptools_scm or importlib.metadata themselves).
    assert "setuptools_scm" not in loaded
    assert "importlib.metadata" not in loaded
    ours = {m for m in loaded if m == "imgctl" or m.startswith("imgctl.")}
    allowed = ("imgctl", "imgctl.errors", "imgctl.cli", "imgctl._version")
    outside = {m for m in ours if m not in allowed}
    assert sorted(m for m in outside if not m.startswith("imgctl.cli.")) == []
    # Nothing of the demo but its command definition.
    assert sorted(m for m in ours if m.startswith("imgctl.cli.demo.")) == []
