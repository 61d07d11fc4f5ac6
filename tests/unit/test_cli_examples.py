"""Every command's ``--help`` ends with examples (cobra's ``Examples:``), and each one parses.

An example must start with ``imgctl <that command>`` and use only flags its command has, with
a value where the flag takes one and a valid choice where it offers some: it is parsed with the
command's own click parser, so a misspelt or renamed flag fails here. A trailing shell redirect
(``> file``) or pipe is not part of the command. New commands add theirs to
``imgctl.cli._examples.EXAMPLES``.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import typer
from typer import _click
from typer._click.exceptions import BadParameter, UsageError
from typer._click.types import File
from typer.core import TyperGroup as Group
from typer.models import TyperPath
from typer.testing import CliRunner

from imgctl.cli._app import app
from imgctl.cli._examples import EXAMPLES

ROOT = typer.main.get_command(app)


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in sorted(getattr(group, "commands", {}).items()):
        if not command.hidden:
            found.extend(_commands(command, (*path, name)))
    return found


COMMANDS = _commands(ROOT)


def _examples(help_text: str) -> list[str]:
    """The command lines of a help page's Examples section (its '# ...' lines are comments)."""
    _, found, section = help_text.partition("\nExamples:\n")
    assert found, "no Examples section"
    lines = [line.strip() for line in section.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _argv(line: str) -> list[str]:
    words = shlex.split(line)
    for position, word in enumerate(words):
        if word in ("|", ">", ">>", "<", "2>", "&&", ";"):
            return words[:position]
    return words


def check(line: str, path: tuple[str, ...]) -> None:
    """Fail unless ``line`` runs ``imgctl <path>`` with flags and arguments its command takes."""
    argv = _argv(line)
    assert argv[:1] == ["imgctl"], f"{line!r} does not start with imgctl"
    assert argv[1 : 1 + len(path)] == list(path), f"{line!r} is not imgctl {' '.join(path)}"
    command: Any = ROOT
    parent: _click.Context | None = None
    name = "imgctl"
    args = argv[1:]
    while True:
        ctx = command.context_class(command, info_name=name, parent=parent)
        parser = command.make_parser(ctx)
        try:
            values, rest, _ = parser.parse_args(args=list(args))
        except UsageError as error:
            pytest.fail(f"{line!r}: {error.format_message()}")
        for param in command.get_params(ctx):
            given = values.get(param.name)
            # Files need not exist for an example; every other value must convert (a choice,
            # an int in its range...).
            if given is None or isinstance(param.type, (TyperPath, File)):
                continue
            for value in given if isinstance(given, (list, tuple)) else [given]:
                try:
                    param.type.convert(value, param, ctx)
                except BadParameter as error:
                    pytest.fail(f"{line!r}: {param.name}: {error.format_message()}")
        if not isinstance(command, Group):
            assert rest == [], f"{line!r}: unexpected arguments {rest}"
            return
        if not rest:
            assert command.invoke_without_command or command is ROOT, f"{line!r}: no command"
            return
        name, args = rest[0], rest[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{line!r}: no command {name!r} in {command.name}"
        parent, command = ctx, sub


def test_the_tree_is_walked() -> None:
    assert ("catalog", "ls") in COMMANDS
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "imgctl")
def test_help_ends_with_examples_that_parse(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="imgctl")
    assert result.exit_code == 0, result.output
    lines = _examples(result.output)
    assert lines, f"imgctl {' '.join(path)} --help: empty Examples section"
    for line in lines:
        check(line, path)


def test_every_example_belongs_to_a_command() -> None:
    # An entry for a command that was renamed or removed would never be shown.
    assert sorted(set(EXAMPLES) - {" ".join(path) for path in COMMANDS}) == []


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("imgctl copy a/b:1 c/d --platfrom linux/amd64", ("copy",)),  # misspelt flag
        ("imgctl copy a/b:1 c/d -o xml", ("copy",)),  # no such output format
        ("imgctl copy a/b:1 c/d --jobs", ("copy",)),  # flag without its value
        ("imgctl digest a/b:1 c/d", ("digest",)),  # one argument too many
        ("imgctl catalog lss", ("catalog",)),  # no such subcommand
        ("imgctl ls a/b", ("digest",)),  # not the command whose help shows it
        ("crane ls a/b", ("ls",)),
    ],
)
def test_a_wrong_example_fails(line: str, path: tuple[str, ...]) -> None:
    # The check above is what makes the examples trustworthy: it must reject these.
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check(line, path)
