"""What ``imgctl --help`` and each command's ``--help`` import, each in a fresh interpreter.

A help must stay within its start-up budget (issue 21: 100 ms, measured by bench/startup.py,
not here): it may import typer and the CLI module of the command asked about, nothing that
only running a command needs, not rich (typer's rich help alone costs more than the budget),
and no other command's module. The root's help lists the commands from ``COMMANDS`` without
importing any of them, so the table must match the modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.main import get_group_from_info
from typer.models import TyperInfo

from imgctl.cli._app import COMMANDS, app, load
from imgctl.cli._help import summary

ROOT = typer.main.get_command(app)

# Never imported by a help: what running a command needs, and rich (help is plain text; typer
# imports rich only to print an error).
DENIED = (
    "alembic",
    "anyio",
    "asyncio",
    "boto3",
    "botocore",
    "cryptography",
    "fastapi",
    "google",
    "grpc",
    "httpcore",
    "httpx",
    "markdown_it",
    "pydantic",
    "pygments",
    "rich",
    "sigstore",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "yaml",
)

# The console script's entry point, as installed; prints what it imported on stderr last.
_PROBE = """
import json, sys
from imgctl.cli import main
sys.argv[0] = "imgctl"
try:
    main()
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
# A None entry marks a module as missing (imgctl.cli.main does that for httpx._main).
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
print(json.dumps({"code": code, "modules": loaded}), file=sys.stderr)
"""

# The CLI modules every command may import at start-up (flags, exit codes, output, help).
_SHARED = {
    "imgctl",
    # The version constants setuptools-scm writes at build time (pyproject.toml).
    "imgctl._version",
    "imgctl.errors",
    "imgctl.cli",
    "imgctl.cli._app",
    "imgctl.cli._completion",
    "imgctl.cli._examples",  # every page ends with its examples
    "imgctl.cli._exit",
    "imgctl.cli._flags",
    "imgctl.cli._help",
    "imgctl.cli._output",
}
# Command modules that import another's definitions (cip's --referrers is copy's, scan calls
# the catalog as catalog's commands do, version takes promote's server flags).
_ALSO = {
    "_cip": {"imgctl.cli._registry"},
    "_scan": {"imgctl.cli._catalog"},
    "_registry_login": {"imgctl.cli._registry_serve"},  # the group it adds login/logout to
}


def _paths(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in getattr(group, "commands", {}).items():
        found.extend(_paths(command, (*path, name)))
    return found


PATHS = _paths(ROOT)


def _help(path: tuple[str, ...]) -> tuple[str, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(result.stderr.splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    return result.stdout, set(report["modules"])


def test_the_root_help_imports_no_command() -> None:
    output, modules = _help(())
    assert "Usage: imgctl" in output
    assert sorted(m for m in modules if m.split(".")[0] in DENIED) == []
    ours = {m for m in modules if m == "imgctl" or m.startswith("imgctl.")}
    assert (
        sorted(ours - (_SHARED - {"imgctl.cli._exit", "imgctl.cli._flags", "imgctl.cli._output"}))
        == []
    )
    # Every command is listed, with its summary.
    for entry in COMMANDS:
        assert f"  {entry.name} " in output


def test_completing_a_command_name_imports_no_command() -> None:
    # imgctl <TAB>: click built every matching command for its short help, which imported every
    # command module; the table's summaries answer instead.
    import os

    env = os.environ | {"_IMGCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "imgctl "}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env
    )
    report = json.loads(result.stderr.splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    for entry in COMMANDS:
        assert f'"{entry.name}":' in result.stdout
    modules = set(report["modules"])
    # (typer's completion classes import rich themselves: DENIED is for --help, not here.)
    commands = {f"imgctl.cli.{entry.module}" for entry in COMMANDS} - _SHARED
    assert sorted(modules & commands) == []


@pytest.mark.parametrize("path", PATHS[1:], ids=" ".join)
def test_a_command_help_imports_its_module_only(path: tuple[str, ...]) -> None:
    output, modules = _help(path)
    assert f"Usage: imgctl {' '.join(path)}" in output
    assert sorted(m for m in modules if m.split(".")[0] in DENIED) == []
    entry = next(entry for entry in COMMANDS if entry.name == path[0])
    module = f"imgctl.cli.{entry.module}"
    allowed = _SHARED | {module} | _ALSO.get(entry.module, set())
    ours = {m for m in modules if m == "imgctl" or m.startswith("imgctl.")}
    assert sorted(ours - allowed) == []


def test_the_table_matches_the_modules() -> None:
    # Each module's Typer app defines exactly the commands the table gives it, in its order.
    apps: dict[tuple[str, str], list[str]] = {}
    for entry in COMMANDS:
        apps.setdefault((entry.module, entry.attribute), []).append(entry.name)
    for (module, attribute), names in apps.items():
        sub_app = getattr(__import__(f"imgctl.cli.{module}", fromlist=[attribute]), attribute)
        group = get_group_from_info(
            TyperInfo(sub_app),
            pretty_exceptions_short=True,
            rich_markup_mode=None,
            suggest_commands=True,
        )
        assert (list(group.commands) if not group.name else [group.name]) == names, module
    # The summaries are what the commands' help says.
    for entry in COMMANDS:
        command = load(entry)
        assert summary(command) == entry.summary, entry.name
        assert not command.hidden


def test_the_root_lists_the_table() -> None:
    assert list(ROOT.commands) == [entry.name for entry in COMMANDS]  # type: ignore[attr-defined]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from imgctl.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("path", [(), ("catalog",)], ids=["imgctl", "catalog"])
def test_a_group_without_a_command_prints_its_help(path: tuple[str, ...]) -> None:
    # As with rich: the page on stdout, nothing on stderr, exit 2 (click's no_args_is_help).
    result = _run(*path)
    assert result.returncode == 2
    assert result.stdout.startswith(f"Usage: imgctl {' '.join(path)}".rstrip())
    assert "Commands:" in result.stdout
    assert result.stderr == ""


def test_the_panels_are_sections_and_brackets_plain() -> None:
    cip = _run("cip", "--help").stdout
    headings = [line for line in cip.splitlines() if line and not line.startswith(" ")]
    assert headings == [
        "Usage: imgctl cip [OPTIONS] COMMAND [ARGS]...",
        "Options:",
        "Signing and provenance (kpromo's provenance, validate, sign and attest phases):",
        "Vulnerability gate (kpromo's validate phase):",
        "Registry access:",
        "Commands:",
        "Examples:",
    ]
    assert "REGISTRY[/PATH]" in cip
    copy = _run("copy", "--help").stdout
    assert "(os/arch[/variant])" in copy
    assert "\\[" not in copy + cip


def test_errors_are_printed_as_before() -> None:
    # typer's rich error box, rich imported only then; exit 2 with a suggestion.
    result = _run("copyy")
    assert result.returncode == 2
    assert "No such command 'copyy'. Did you mean 'copy'?" in result.stderr
    assert "╭─ Error" in result.stderr
