"""One precedence for every setting (flag > environment > config file > built-in), read once.

``imgctl.config.setting`` is the order; ``ServerSettings.resolve`` applies it to the server's
files and state directory; the store owns IMGCTL_DATABASE_URL for the server and the issuer.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from imgctl.config import setting
from imgctl.identity.issuer import load_issuer_config
from imgctl.identity.issuer._replay import replay_database_url
from imgctl.remote.config import config_file
from imgctl.server.app import ServerSettings
from imgctl.store import database_url

from ..conftest import IMGCTL

FIELDS = {
    "policy_file": "IMGCTL_POLICY_FILE",
    "tokens_file": "IMGCTL_TOKENS_FILE",
    "watches_file": "IMGCTL_WATCHES_FILE",
    "state_dir": "IMGCTL_STATE_DIR",
}


@pytest.mark.parametrize(
    ("flag", "environ", "file", "default", "expected"),
    [
        (1, {"N": "2"}, 3, 4, 1),
        (0, {"N": "2"}, 3, 4, 0),  # a flag given as 0 is given
        (None, {"N": "2"}, 3, 4, 2),
        (None, {"N": ""}, 3, 4, 3),  # empty is unset, as Typer counts it
        (None, {}, 3, 4, 3),
        (None, {"OTHER": "2"}, None, 4, 4),
        (None, {}, None, None, None),
    ],
)
def test_setting_takes_the_first_that_is_set(
    flag: int | None, environ: dict[str, str], file: int | None, default: int | None, expected: int
) -> None:
    assert setting(flag, "N", environ, parse=int, file=file, default=default) == expected


def test_setting_parses_only_the_variable() -> None:
    seen: list[str] = []

    def parse(raw: str) -> str:
        seen.append(raw)
        return raw.upper()

    assert setting("flag", "N", {"N": "env"}, parse=parse) == "flag"
    assert setting(None, "N", {"N": "env"}, parse=parse, file="file") == "ENV"
    assert setting(None, None, {"N": "env"}, parse=parse, file="file") == "file"
    assert seen == ["env"]


@pytest.mark.parametrize(("field", "variable"), FIELDS.items())
def test_server_settings_flag_then_variable_then_built_in(
    field: str, variable: str, tmp_path: Path
) -> None:
    environ = {variable: str(tmp_path / "from-env"), "XDG_DATA_HOME": str(tmp_path / "data")}
    flagged = ServerSettings(**{field: tmp_path / "from-flag"}).resolve(environ)
    assert getattr(flagged, field) == tmp_path / "from-flag"
    assert getattr(ServerSettings().resolve(environ), field) == tmp_path / "from-env"
    unset = ServerSettings().resolve({variable: "", "XDG_DATA_HOME": str(tmp_path / "data")})
    built_in = tmp_path / "data" / "imgctl" if field == "state_dir" else None
    assert getattr(unset, field) == built_in


def test_server_settings_resolve_reads_nothing_else(tmp_path: Path) -> None:
    environ = {name: str(tmp_path / name) for name in FIELDS.values()}
    settings = ServerSettings(grace=5.0, http_address=None).resolve(environ)
    assert (settings.grace, settings.http_address) == (5.0, None)
    assert settings.resolve({}) == settings  # resolving again changes nothing


def test_state_dir_built_in_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ServerSettings().resolve({}).state_dir == tmp_path / ".local" / "share" / "imgctl"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "sqlite:///{keys}/issuer.db"),
        ({"IMGCTL_DATABASE_URL": "  "}, "sqlite:///{keys}/issuer.db"),
        ({"IMGCTL_DATABASE_URL": "postgres://u@db/x"}, "postgresql+psycopg://u@db/x"),
        ({"IMGCTL_DATABASE_URL": "sqlite:////srv/a.db"}, "sqlite:////srv/a.db"),
    ],
)
def test_the_issuer_reads_the_database_url_as_the_server_does(
    environ: dict[str, str], expected: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    config_file = tmp_path / "idp.yaml"
    public_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    config_file.write_text(
        json.dumps(
            {
                "issuer": "https://idp.example.com",
                "keys_dir": str(keys),
                "staticClients": [{"id": "imgctl", "secret": "s"}],
                "users": {"alice": {"keys": [public_key]}},
            }
        )
    )
    config = load_issuer_config(config_file)
    assert replay_database_url(config, environ) == expected.format(keys=keys)
    server = database_url(environ, keys, "issuer.db")
    assert server == expected.format(keys=keys)


# Variables that configure two programs or two commands, each of which reads it once.
SHARED = {
    # the client's default --source; the server's default source environment
    "IMGCTL_DEFAULT_SOURCE": {"cli/_promote.py", "server/app.py"},
    # registry flags of the client commands; the server, which has no such flags, reads them too
    "IMGCTL_INSECURE_REGISTRIES": {"cli/_flags.py", "server/app.py"},
    "IMGCTL_TLS_CA_CERT_PATH": {"cli/_flags.py", "server/app.py"},
    # imgctl scan --config; imgctl server --watches
    "IMGCTL_WATCHES_FILE": {"cli/_scan.py", "server/app.py"},
    # imgctl catalog --token / --url; imgctl cip --catalog-token / --catalog-url
    "IMGCTL_CATALOG_TOKEN": {"cli/_catalog.py", "cli/_cip.py"},
    "IMGCTL_CATALOG_URL": {"cli/_cip.py", "cli/_flags.py"},
    # the login flags; imgctl auth logout forgets the tokens of the same issuer and audience
    "DEX_URL": {"cli/_flags.py", "cli/_identity.py"},
    "IMGCTL_AUDIENCE": {"cli/_flags.py", "cli/_identity.py"},
}
_VARIABLE = re.compile(r"^(IMGCTL|OIDC|KUBECTL|DEX)_[A-Z0-9_]*[A-Z0-9]$")


def variable_readers(src: Path) -> dict[str, set[str]]:
    """Where each variable is read: ``envvar=``, ``environ.get``/``[...]``, ``setting(_, NAME)``."""
    trees = {
        path: ast.parse(path.read_text(), str(path))
        for path in src.rglob("*.py")
        if "v1" not in path.relative_to(src).parts
    }
    constants: dict[str, str] = {}
    for tree in trees.values():
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Constant) and _VARIABLE.match(str(value.value)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                constants.update((t.id, value.value) for t in targets if isinstance(t, ast.Name))

    def name(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and _VARIABLE.match(str(node.value)):
            return str(node.value)
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    readers: dict[str, set[str]] = {}
    for path, tree in trees.items():
        where = str(path.relative_to(src))
        for node in ast.walk(tree):
            found: list[str | None] = []
            if isinstance(node, ast.Call):
                found += [name(k.value) for k in node.keywords if k.arg == "envvar"]
                func = node.func
                if isinstance(func, ast.Name) and func.id == "setting" and len(node.args) > 1:
                    found.append(name(node.args[1]))
                if isinstance(func, ast.Attribute) and func.attr in ("get", "getenv", "pop"):
                    found += [name(node.args[0])] if node.args else []
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                found.append(name(node.slice))
            for variable in filter(None, found):
                readers.setdefault(variable, set()).add(where)
    return readers


def test_every_variable_has_one_reader() -> None:
    readers = variable_readers(Path(__file__).resolve().parents[2] / "src" / "imgctl")
    assert "IMGCTL_POLICY_FILE" in readers  # the scan sees the readers
    twice = {variable: where for variable, where in readers.items() if len(where) > 1}
    assert twice == SHARED


@pytest.mark.parametrize(
    ("flag", "environ", "expected", "named"),
    [
        (Path("/f.toml"), {"IMGCTL_CONFIG": "/e.toml"}, "/f.toml", True),
        (None, {"IMGCTL_CONFIG": "/e.toml"}, "/e.toml", True),
        (None, {"IMGCTL_CONFIG": "~/e.toml"}, "{home}/e.toml", True),
        (None, {"IMGCTL_CONFIG": "", "XDG_CONFIG_HOME": "/x"}, "/x/imgctl/config.toml", False),
        (None, {}, "{home}/.config/imgctl/config.toml", False),
    ],
)
def test_config_file_flag_then_variable_then_default(
    flag: Path | None, environ: dict[str, str], expected: str, named: bool, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    environ = {"HOME": str(home), **environ}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        assert config_file(flag, environ, home) == (Path(expected.format(home=home)), named)


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_named_config_file_that_is_missing_is_refused(how: str, tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTL_")}
    env["HOME"] = str(tmp_path)
    args = [IMGCTL, "digest", "127.0.0.1:9/app:v1"]
    if how == "flag":
        args += ["--config", str(missing)]
    else:
        env["IMGCTL_CONFIG"] = str(missing)
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2  # a usage error (README "Exit codes")
    assert str(missing) in result.stderr
    assert result.stderr.startswith("imgctl: error:")


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("server", "IMGCTL_POLICY_FILE"),
        ("server", "IMGCTL_TOKENS_FILE"),
        ("server", "IMGCTL_WATCHES_FILE"),
        ("catalog serve", "IMGCTL_TOKENS_FILE"),
    ],
)
def test_the_server_reads_its_files_from_the_environment(
    command: str, variable: str, tmp_path: Path
) -> None:
    # A file that does not load stops the start with its name: proof it was read, once.
    broken = tmp_path / "broken.yaml"
    broken.write_text("garbage: [\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGCTL_", "OIDC_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        OIDC_ISSUER_URL="https://idp.example.com",
        OIDC_AUDIENCE="https://imgctl.example.com",
        IMGCTL_REGISTRY_DEV="localhost:5000",
        IMGCTL_REGISTRY_PROD="localhost:5001",
    )
    env[variable] = str(broken)
    args = [IMGCTL, *command.split(), "--http-address", "127.0.0.1:0"]
    if command == "server":
        args += ["--bind-address", "127.0.0.1:0"]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("imgctl: error:")]
    assert len(errors) == 1
    assert f"{broken}: line 2, column 1: invalid YAML" in errors[0]


def test_server_signing_settings_flag_then_variable_then_built_in() -> None:
    environ = {"IMGCTL_SIGN_KEY": "awskms:///alias/env", "IMGCTL_MAX_SIGNATURE_OPS": " 7 "}
    flagged = ServerSettings(sign_key="cosign.key", max_signature_ops=3).resolve(environ)
    assert (flagged.sign_key, flagged.max_signature_ops) == ("cosign.key", 3)
    from_env = ServerSettings().resolve(environ)
    assert (from_env.sign_key, from_env.max_signature_ops) == ("awskms:///alias/env", 7)
    built_in = ServerSettings().resolve({"IMGCTL_SIGN_KEY": "", "IMGCTL_MAX_SIGNATURE_OPS": ""})
    assert (built_in.sign_key, built_in.max_signature_ops) == (None, 50)
    assert built_in.resolve({}) == built_in


@pytest.mark.parametrize("value", ["0", "1001", "-5", "fifty", "2.5"])
def test_a_bad_max_signature_ops_variable_is_refused(value: str) -> None:
    from imgctl.errors import UsageError

    with pytest.raises(UsageError) as caught:
        ServerSettings().resolve({"IMGCTL_MAX_SIGNATURE_OPS": value})
    assert "IMGCTL_MAX_SIGNATURE_OPS" in str(caught.value)
