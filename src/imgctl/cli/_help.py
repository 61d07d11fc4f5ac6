"""Plain ``--help`` pages: click's layout, with the option panels the commands declare, no rich.

Typer renders help with rich (boxes, panels), and importing ``typer.rich_utils`` costs more
than the 100 ms a ``--help`` may take (issue 21, docs/performance.md "Start-up"). These classes
print click's plain layout instead, keeping what rich showed: each ``rich_help_panel`` is a
section of its own, in rich's order (arguments, options, commands; the default panel first),
then the command's examples (``_examples``),
and a bracket escaped with a backslash (so that rich, which shell completion still uses, does
not read ``[word]`` as markup) shows as ``[``. Errors keep typer's rich rendering:
``typer.rich_utils`` is imported only when one is printed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

import typer
from typer import _click
from typer.core import HAS_RICH, TyperCommand, TyperGroup
from typer.main import Typer
from typer.models import DefaultPlaceholder

__all__ = [
    "HelpContext",
    "PanelCommand",
    "PanelGroup",
    "format_commands",
    "format_examples",
    "summary",
    "use_plain_help",
]

# rich's default panel titles (typer.rich_utils), so the sections read as the panels did.
ARGUMENTS = "Arguments"
OPTIONS = "Options"
COMMANDS = "Commands"


def _plain(text: str) -> str:
    return text.replace("\\[", "[")


class HelpFormatter(_click.HelpFormatter):
    """click's formatter, showing rich's escaped brackets as brackets."""

    def write_text(self, text: str) -> None:
        """Write re-wrapped text without rich's escapes."""
        super().write_text(_plain(text))

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        """Write a definition list without rich's escapes."""
        super().write_dl([(term, _plain(text)) for term, text in rows], col_max, col_spacing)


class HelpContext(typer.Context):
    """A click context whose help pages use :class:`HelpFormatter`."""

    formatter_class = HelpFormatter


def _panel(item: object) -> str | None:
    # typer leaves a DefaultPlaceholder where a command names no panel.
    panel = getattr(item, "rich_help_panel", None)
    if isinstance(panel, DefaultPlaceholder):
        panel = panel.value
    return panel if isinstance(panel, str) else None


def _panels(
    rows: Iterable[tuple[str | None, tuple[str, str]]], default: str
) -> list[tuple[str, list[tuple[str, str]]]]:
    # The default panel first, the others in the order their first row appears (as rich does).
    panels: dict[str, list[tuple[str, str]]] = {default: []}
    for panel, row in rows:
        panels.setdefault(panel or default, []).append(row)
    return [(title, found) for title, found in panels.items() if found]


def _format_params(
    command: _click.Command, ctx: _click.Context, formatter: _click.HelpFormatter
) -> None:
    arguments: list[tuple[str | None, tuple[str, str]]] = []
    options: list[tuple[str | None, tuple[str, str]]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        panel = _panel(param)
        if param.param_type_name == "argument":
            arguments.append((panel, record))
        elif param.param_type_name == "option":
            options.append((panel, record))
    for title, rows in [*_panels(arguments, ARGUMENTS), *_panels(options, OPTIONS)]:
        with formatter.section(title):
            formatter.write_dl(rows)


def summary(command: _click.Command) -> str:
    """What a group's help shows of a command: its short help, else its help's first paragraph.

    Whole, as rich showed it; click would cut it at the first sentence or 45 characters.
    """
    text = inspect.cleandoc(command.short_help or command.help or "")
    return text.split("\n\n")[0].replace("\n", " ").strip()


def format_commands(
    commands: Sequence[tuple[str, _click.Command | str]], formatter: _click.HelpFormatter
) -> None:
    """Write a group's commands, one section per panel (their ``rich_help_panel``).

    A command may be given as its summary alone (then in no panel, and shown).
    """
    rows = [
        (None, (name, command))
        if isinstance(command, str)
        else (_panel(command), (name, summary(command)))
        for name, command in commands
        if isinstance(command, str) or not command.hidden
    ]
    for title, panel_rows in _panels(rows, COMMANDS):
        with formatter.section(title):
            formatter.write_dl(panel_rows)


def _command_path(ctx: _click.Context) -> str:
    # "catalog ls" for imgctl catalog ls, "" for imgctl itself (whatever the program's name).
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def format_examples(ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
    """The command's ``Examples:`` section (``_examples``), as cobra prints it: never rewrapped."""
    from imgctl.cli._examples import examples

    found = examples(_command_path(ctx))
    if not found:
        return
    with formatter.section("Examples"):
        indent = " " * formatter.current_indent
        for number, (comment, line) in enumerate(found):
            if number:
                formatter.write("\n")
            formatter.write(f"{indent}# {comment}\n{indent}{line}\n")


def _rich_errors(ctx: _click.Context) -> bool:
    # Whether typer prints errors with rich (then without the message of NoArgsIsHelpError).
    root = ctx.find_root().command
    return HAS_RICH and getattr(root, "rich_markup_mode", None) is not None


class PanelCommand(TyperCommand):
    """A typer command whose ``--help`` is plain text with its option panels."""

    context_class = HelpContext

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """Write the plain help page of click (typer would render it with rich), then examples."""
        _click.Command.format_help(self, ctx, formatter)
        format_examples(ctx, formatter)

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """Arguments and options, one section per panel."""
        _format_params(self, ctx, formatter)


class PanelGroup(TyperGroup):
    """A typer group whose ``--help`` is plain text with its option and command panels."""

    context_class = HelpContext

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """Write the plain help page of click (typer would render it with rich), then examples."""
        _click.Command.format_help(self, ctx, formatter)
        format_examples(ctx, formatter)

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """Arguments and options, then the commands, one section per panel."""
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The subcommands, one section per panel."""
        found = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        format_commands([(name, command) for name, command in found if command], formatter)

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        """Print the help of a group called without a command (``no_args_is_help``), as before."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing and _rich_errors(ctx):
            # typer's rich error handler prints nothing for this error and exits 2: the page
            # used to be printed by rich while the error was built; print the plain one.
            typer.echo(ctx.get_help(), color=ctx.color)
        return super().parse_args(ctx, args)


def use_plain_help(app: Typer) -> Typer:
    """Give the commands and groups of ``app`` and its sub-apps the plain help classes.

    :class:`PanelCommand` and :class:`PanelGroup`, unless they name a class of their own.
    """
    # typer's own classes count as none named: its decorators fill them in.
    if isinstance(app.info.cls, DefaultPlaceholder) or app.info.cls in (None, TyperGroup):
        app.info.cls = PanelGroup
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = PanelCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_plain_help(group.typer_instance)
    return app
