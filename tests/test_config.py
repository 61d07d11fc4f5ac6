"""One precedence for every setting (flag > environment > config file > built-in), read once.

``imgctl.config.setting`` is the order; ``ServerSettings.resolve`` applies it to the server's
files and state directory; the store owns IMGCTL_DATABASE_URL for the server and the issuer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from imgctl.config import setting
from imgctl.identity.issuer import load_issuer_config
from imgctl.identity.issuer._replay import replay_database_url
from imgctl.server.app import ServerSettings
from imgctl.store import database_url

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
