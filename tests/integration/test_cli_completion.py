"""``imgctl completion bash|zsh|fish``: the printed scripts, and the answers they get back.

The bash script is sourced in a real bash and asked to complete, as bash itself would ask
(``COMP_WORDS``/``COMP_CWORD`` and the completion function). zsh and fish need not be
installed: their scripts are checked for what they call, and that call is made exactly as the
script makes it (same environment variables), so the answer they would get is checked too.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ..conftest import IMGCTL


def _env(**extra: str) -> dict[str, str]:
    # The scripts call `imgctl` by name, as a user's shell would find it on PATH.
    path = f"{Path(IMGCTL).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **extra}


def _script(shell: str) -> str:
    result = subprocess.run(
        [IMGCTL, "completion", shell], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _bash_complete(*words: str) -> list[str]:
    """What bash offers for the last of ``words`` after sourcing ``imgctl completion bash``."""
    program = (
        "source <(imgctl completion bash) || exit 9\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_imgctl_completion imgctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("imgctl", "co"), ["copy", "completion"]),
        (("imgctl", "au"), ["auth-check", "auth", "audit"]),
        (("imgctl", "catalog", ""), ["ls", "get", "put", "rm", "import", "serve"]),
        (("imgctl", "registry", "s"), ["serve"]),
        (("imgctl", "registry", "lo"), ["login", "logout"]),
        (("imgctl", "copy", "--all"), ["--all-tags"]),
        (("imgctl", "copy", "--d"), ["--dest-creds"]),
        (("imgctl", "copy", "--ret"), ["--retries"]),
        (("imgctl", "completion", ""), ["bash", "zsh", "fish"]),
        (("imgctl", "nothing-starts-like-this"), []),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_bash_script_completes(words: tuple[str, ...], expected: list[str]) -> None:
    assert _bash_complete(*words) == expected


def test_bash_script_registers_the_function_for_imgctl() -> None:
    script = _script("bash")
    assert "_IMGCTL_COMPLETE=complete_bash" in script
    assert script.rstrip().endswith("complete -o default -F _imgctl_completion imgctl")


def test_zsh_script_and_its_answer() -> None:
    script = _script("zsh")
    assert script.startswith("#compdef imgctl")
    assert "compdef _imgctl_completion imgctl" in script
    assert "_IMGCTL_COMPLETE=complete_zsh imgctl" in script
    # What the script's function runs: the words so far in _TYPER_COMPLETE_ARGS.
    answer = subprocess.run(
        ["imgctl"],
        capture_output=True,
        text=True,
        env=_env(_TYPER_COMPLETE_ARGS="imgctl co", _IMGCTL_COMPLETE="complete_zsh"),
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("_arguments '*: :((")
    assert '"copy":' in answer.stdout
    assert '"completion":' in answer.stdout
    assert '"cip":' not in answer.stdout


def test_fish_script_and_its_answer() -> None:
    script = _script("fish")
    assert script.startswith("complete --command imgctl ")
    assert "_IMGCTL_COMPLETE=complete_fish" in script
    answer = subprocess.run(
        ["imgctl"],
        capture_output=True,
        text=True,
        env=_env(
            _TYPER_COMPLETE_ARGS="imgctl co",
            _IMGCTL_COMPLETE="complete_fish",
            _TYPER_COMPLETE_FISH_ACTION="get-args",
        ),
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    offered = [line.split("\t")[0] for line in answer.stdout.splitlines()]
    assert offered == ["copy", "completion"]


def test_unknown_shell_is_refused() -> None:
    result = subprocess.run(
        [IMGCTL, "completion", "tcsh"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "tcsh" in result.stderr
    assert result.stdout == ""


def test_without_the_variable_imgctl_runs_normally() -> None:
    # The completion hook only answers when a script sets the variable.
    result = subprocess.run(
        [IMGCTL, "--version"],
        capture_output=True,
        text=True,
        env=_env(_TYPER_COMPLETE_ARGS="imgctl co"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imgctl ")
