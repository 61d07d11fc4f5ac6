"""Client settings: flag/env > config file [client] > defaults baked into the wheel > fallback.

In-process tests call ``imgctl.cli._settings.resolve`` with a temporary ``IMGCTL_CONFIG`` and a
temporary ``_build_defaults.json`` (``imgctl._defaults`` is pointed at a temporary package
directory; its JSON reading and filtering run unchanged). The build tests run the real
``setup.py`` hook through ``pip wheel`` on a copy of the project (an in-tree build would write
``build/`` and ``src/imgctl.egg-info`` into the checkout) and run the built package, unpacked,
in a subprocess. The CLI tests run ``imgctl promote`` against a port nobody listens on.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imgctl import _defaults
from imgctl.cli._settings import resolve
from imgctl.errors import UsageError

from ..conftest import IMGCTL

ROOT = Path(__file__).resolve().parents[2]
BUILD_VARIABLES = tuple(f"IMGCTL_BUILD_DEFAULT_{key.upper()}" for key in _defaults.BUILD_KEYS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def toml_client(values: dict[str, Any]) -> str:
    """A ``[client]`` table; JSON strings and booleans are valid TOML values."""
    return "[client]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


# ---------------------------------------------------------------- in-process: resolve()


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """IMGCTL_CONFIG points here (the file does not exist until a test writes it)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("IMGCTL_CONFIG", str(path))
    return path


@pytest.fixture
def bake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Write the text of ``_build_defaults.json`` into a package directory imgctl reads from."""
    package = tmp_path / "baked" / "imgctl"
    package.mkdir(parents=True)

    def files(name: str) -> Path:
        assert name == "imgctl"
        return package

    monkeypatch.setattr(_defaults, "resources", SimpleNamespace(files=files))
    _defaults.build_defaults.cache_clear()

    def write(text: str) -> None:
        (package / "_build_defaults.json").write_text(text)
        _defaults.build_defaults.cache_clear()

    yield write
    _defaults.build_defaults.cache_clear()


LAYERS = [
    pytest.param("flag", "config", "baked", "flag", id="flag-beats-config-and-baked"),
    pytest.param("flag", None, "baked", "flag", id="flag-beats-baked"),
    pytest.param("flag", None, None, "flag", id="flag-alone"),
    pytest.param(None, "config", "baked", "config", id="config-beats-baked"),
    pytest.param(None, "config", None, "config", id="config-alone"),
    pytest.param(None, None, "baked", "baked", id="baked-beats-fallback"),
    pytest.param(None, None, None, "fallback", id="fallback-last"),
]


@pytest.mark.parametrize("key", ["server", "source", "destination", "dex_url", "audience"])
@pytest.mark.parametrize(("flag", "config", "baked", "winner"), LAYERS)
def test_precedence(
    config_path: Path,
    bake: Callable[[str], None],
    key: str,
    flag: str | None,
    config: str | None,
    baked: str | None,
    winner: str,
) -> None:
    # Every layer is present; a layer without this key holds another one.
    config_path.write_text(toml_client({key: f"config-{key}"} if config else {"tls": True}))
    bake(json.dumps({key: f"baked-{key}"} if baked else {"tls": "true"}))
    value = f"flag-{key}" if flag else None
    assert resolve(value, key, f"fallback-{key}") == f"{winner}-{key}"


def test_fallback_defaults_to_none(config_path: Path, bake: Callable[[str], None]) -> None:
    bake("{}")
    assert resolve(None, "server") is None


def test_explicit_false_beats_config_and_baked(
    config_path: Path, bake: Callable[[str], None]
) -> None:
    config_path.write_text(toml_client({"tls": True}))
    bake(json.dumps({"tls": "true"}))
    assert resolve(False, "tls", True) is False


def test_config_false_beats_baked(config_path: Path, bake: Callable[[str], None]) -> None:
    config_path.write_text(toml_client({"tls": False}))
    bake(json.dumps({"tls": "true"}))
    assert resolve(None, "tls", True) is False


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="no-config-file"),
        pytest.param("", id="empty-file"),
        pytest.param('[registry]\ninsecure = ["localhost:5000"]\n', id="no-client-table"),
    ],
)
def test_baked_default_when_the_config_says_nothing(
    config_path: Path, bake: Callable[[str], None], text: str | None
) -> None:
    if text is not None:
        config_path.write_text(text)
    bake(json.dumps({"destination": "prod"}))
    assert resolve(None, "destination", "") == "prod"


def test_config_file_from_home_when_imgctl_config_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bake: Callable[[str], None]
) -> None:
    monkeypatch.delenv("IMGCTL_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    bake(json.dumps({"server": "baked:9999"}))
    assert resolve(None, "server") == "baked:9999"
    path = tmp_path / ".config" / "imgctl" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(toml_client({"server": "home:9999"}))
    assert resolve(None, "server") == "home:9999"
    xdg = tmp_path / "xdg"
    (xdg / "imgctl").mkdir(parents=True)
    (xdg / "imgctl" / "config.toml").write_text(toml_client({"server": "xdg:9999"}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert resolve(None, "server") == "xdg:9999"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            '[clinet]\nserver = "x:1"\n',
            "unknown key(s) clinet (did you mean 'client'?)",
            id="unknown-table",
        ),
        pytest.param(
            '[client]\nsevrer = "x:1"\n',
            "unknown key(s) sevrer (did you mean 'server'?) in [client]",
            id="unknown-key",
        ),
        pytest.param("[client]\nserver = \n", "is not valid TOML", id="syntax-error"),
        pytest.param('[client\nserver = "x:1"\n', "is not valid TOML", id="unclosed-table"),
        pytest.param('client = "prod"\n', "client must be a table", id="client-not-a-table"),
        pytest.param("[client]\ntls = 'yes'\n", "tls must be true or false", id="tls-not-bool"),
        pytest.param("[client]\nserver = 9999\n", "server must be a string", id="server-int"),
    ],
)
def test_bad_config_file_is_a_usage_error_naming_it(
    config_path: Path, bake: Callable[[str], None], text: str, problem: str
) -> None:
    config_path.write_text(text)
    bake(json.dumps({"server": "baked:9999"}))
    with pytest.raises(UsageError) as caught:
        resolve(None, "server", "localhost:9999")
    assert str(config_path) in caught.value.message
    assert problem in caught.value.message


def test_unknown_client_key_is_a_usage_error(
    config_path: Path, bake: Callable[[str], None]
) -> None:
    config_path.write_text(toml_client({"destinaton": "prod"}))
    bake("{}")
    with pytest.raises(UsageError) as caught:
        resolve(None, "destination", "")
    assert str(config_path) in caught.value.message
    assert "destinaton" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"source": "dev", "destination": "prod"}',
            {"source": "dev", "destination": "prod"},
            id="values",
        ),
        pytest.param(
            '{"source": "dev", "colour": "blue", "tls": true, "server": "", "audience": null}',
            {"source": "dev"},
            id="unknown-keys-non-strings-and-empties-dropped",
        ),
        pytest.param('["source", "dev"]', {}, id="not-an-object"),
        pytest.param("{not json", {}, id="invalid-json"),
        pytest.param("", {}, id="empty-file"),
    ],
)
def test_build_defaults_reading(
    bake: Callable[[str], None], text: str, expected: dict[str, str]
) -> None:
    bake(text)
    assert _defaults.build_defaults() == expected
    assert _defaults.build_default("source") == expected.get("source")


def test_build_defaults_without_a_file(bake: Callable[[str], None]) -> None:
    assert _defaults.build_defaults() == {}
    assert _defaults.build_default("destination") is None


def test_the_source_tree_bakes_nothing() -> None:
    import imgctl

    package = Path(imgctl.__file__).parent
    assert package == ROOT / "src" / "imgctl"
    assert not (package / "_build_defaults.json").exists()
    _defaults.build_defaults.cache_clear()
    try:
        assert _defaults.build_defaults() == {}
    finally:
        _defaults.build_defaults.cache_clear()


def test_setup_py_knows_the_same_keys() -> None:
    # setup.py cannot import imgctl at build time, so it keeps its own copy of the key list.
    tree = ast.parse((ROOT / "setup.py").read_text())
    [keys] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["KEYS"]
    ]
    assert ast.literal_eval(keys) == _defaults.BUILD_KEYS


# ---------------------------------------------------------------- real builds

BAKED = {"IMGCTL_BUILD_DEFAULT_SOURCE": "dev", "IMGCTL_BUILD_DEFAULT_DESTINATION": "prod"}


def copy_project(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(
        ROOT / "src" / "imgctl",
        target / "src" / "imgctl",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return target


def build_wheel(project: Path, out: Path, extra_env: dict[str, str]) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in BUILD_VARIABLES}
    env.update(extra_env)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(project),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = out.glob("imgctl-*.whl")
    return wheel


def baked_json(wheel: Path) -> dict[str, Any] | None:
    with zipfile.ZipFile(wheel) as archive:
        if "imgctl/_build_defaults.json" not in archive.namelist():
            return None
        document: dict[str, Any] = json.loads(archive.read("imgctl/_build_defaults.json"))
        return document


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(project copy, wheel) built with IMGCTL_BUILD_DEFAULT_SOURCE/DESTINATION set."""
    root = tmp_path_factory.mktemp("baked-build")
    project = copy_project(root / "project")
    return project, build_wheel(project, root / "wheel", BAKED)


@pytest.fixture(scope="module")
def site(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baked wheel, unpacked: a directory to put first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("baked-site")
    with zipfile.ZipFile(built[1]) as archive:
        archive.extractall(target)
    return target


@pytest.mark.slow
def test_wheel_built_with_variables_bakes_exactly_them(built: tuple[Path, Path]) -> None:
    assert baked_json(built[1]) == {"source": "dev", "destination": "prod"}


@pytest.mark.slow
def test_wheel_built_without_variables_bakes_nothing(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    assert baked_json(build_wheel(project, tmp_path / "wheel", {})) is None


@pytest.mark.slow
def test_rebuild_without_variables_drops_the_old_defaults(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    project, _ = built
    assert baked_json(build_wheel(project, tmp_path / "wheel", {})) is None


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No IMGCTL_*, DEX_URL, SSH agent or user config: only what the test sets."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


SHOW = (
    "import json, imgctl\n"
    "from imgctl.cli._settings import resolve\n"
    "print(json.dumps({'file': imgctl.__file__, 'source': resolve(None, 'source', ''),"
    " 'destination': resolve(None, 'destination', ''),"
    " 'server': resolve(None, 'server', 'localhost:9999')}))\n"
)


@pytest.mark.slow
def test_built_package_resolves_its_baked_defaults(site: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        env=clean_env(tmp_path / "home", PYTHONPATH=str(site)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert Path(shown["file"]).parent == site / "imgctl"  # the wheel's copy, not src/
    assert shown["source"] == "dev"
    assert shown["destination"] == "prod"
    assert shown["server"] == "localhost:9999"


@pytest.mark.slow
def test_config_file_beats_the_built_package_defaults(site: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml_client({"destination": "int"}))
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        env=clean_env(tmp_path / "home", PYTHONPATH=str(site), IMGCTL_CONFIG=str(config)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["source"], shown["destination"]) == ("dev", "int")


@pytest.mark.slow
def test_built_cli_uses_the_baked_destination(site: Path, tmp_path: Path) -> None:
    # The source tree's CLI stops at "no destination" (exit 2, see below); the built one gets
    # its destination from the wheel and goes on to the (absent) server: exit 6.
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgctl",
            "promote",
            "app:v1",
            "--server",
            f"127.0.0.1:{port}",
            "--dex-url",
            f"http://127.0.0.1:{port}",
        ],
        env=clean_env(tmp_path / "home", PYTHONPATH=str(site)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 6, result.stderr
    assert f"cannot reach the imgctl server at 127.0.0.1:{port}" in result.stderr


# ---------------------------------------------------------------- the CLI, no server


def promote(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "promote", *args],
        env=clean_env(home, **env),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_server_exits_6(tmp_path: Path) -> None:
    port = free_port()
    result = promote(
        tmp_path / "home",
        "app:v1",
        "-d",
        "prod",
        "--server",
        f"127.0.0.1:{port}",
        "--dex-url",
        f"http://127.0.0.1:{port}",
    )
    assert result.returncode == 6, result.stderr
    assert result.stderr.startswith(
        f"imgctl: error: cannot reach the imgctl server at 127.0.0.1:{port}"
    )
    # What to check, and how to name another server.
    assert result.stderr.rstrip().endswith(
        "is `imgctl server` running there? Name it with --server HOST:PORT (IMGCTL_SERVER);"
        " a server with TLS needs --tls"
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_destination_exits_2(tmp_path: Path) -> None:
    result = promote(tmp_path / "home", "app:v1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("imgctl: error: no destination")
    assert "--destination" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_reference_exits_2(tmp_path: Path) -> None:
    result = promote(tmp_path / "home", "-d", "prod")
    assert result.returncode == 2, result.stderr
    assert "REF" in result.stderr


def test_cli_config_server_and_destination(tmp_path: Path) -> None:
    config_port, flag_port, env_port = free_port(), free_port(), free_port()
    config = tmp_path / "config.toml"
    config.write_text(toml_client({"server": f"127.0.0.1:{config_port}", "destination": "prod"}))
    home = tmp_path / "home"

    from_config = promote(home, "app:v1", IMGCTL_CONFIG=str(config))
    assert from_config.returncode == 6, from_config.stderr
    assert f"at 127.0.0.1:{config_port}:" in from_config.stderr

    from_flag = promote(
        home, "app:v1", "--server", f"127.0.0.1:{flag_port}", IMGCTL_CONFIG=str(config)
    )
    assert from_flag.returncode == 6, from_flag.stderr
    assert f"at 127.0.0.1:{flag_port}:" in from_flag.stderr

    from_env = promote(
        home, "app:v1", IMGCTL_CONFIG=str(config), IMGCTL_SERVER=f"127.0.0.1:{env_port}"
    )
    assert from_env.returncode == 6, from_env.stderr
    assert f"at 127.0.0.1:{env_port}:" in from_env.stderr


def test_cli_destination_from_environment_variable(tmp_path: Path) -> None:
    port = free_port()
    result = promote(
        tmp_path / "home",
        "app:v1",
        "--server",
        f"127.0.0.1:{port}",
        IMGCTL_DEFAULT_DESTINATION="prod",
    )
    assert result.returncode == 6, result.stderr


def test_cli_bad_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[clinet]\nserver = "127.0.0.1:1"\n')
    result = promote(tmp_path / "home", "app:v1", "-d", "prod", IMGCTL_CONFIG=str(config))
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("imgctl: error: ")
    assert str(config) in result.stderr
    assert result.returncode == 2
