"""The config file's registry section and how flags and env are merged over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgctl.errors import UsageError
from imgctl.remote import TLSConfig
from imgctl.remote.config import (
    RegistryConfig,
    default_config_path,
    insecure_hosts,
    load_registry_config,
    resolve_tls,
)

CONFIG = """\
[client]
server = "imgctl.example.com:9999"

[registry]
ca_cert_paths = ["/etc/ssl/corp.pem"]
client_cert = "/certs/default.crt"
client_key = "/certs/default.key"
insecure = ["dev.local:5000"]

[registry.hosts."harbor.example.com"]
ca_cert_paths = "/etc/ssl/harbor.pem"
client_cert = "~/harbor.crt"
client_key = "~/harbor.key"
verify_certs = true

[registry.hosts."lab.example.com"]
verify_certs = false
insecure = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_full_section_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    config = load_registry_config(write(tmp_path, CONFIG))
    assert config.ca_cert_paths == ("/etc/ssl/corp.pem",)
    assert config.insecure == ("dev.local:5000",)
    harbor = config.hosts["harbor.example.com"]
    assert harbor.ca_cert_paths == ("/etc/ssl/harbor.pem",)
    assert harbor.client_cert == "/home/u/harbor.crt"  # ~ expanded
    assert config.hosts["lab.example.com"].verify_certs is False


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert load_registry_config(tmp_path / "absent.toml").hosts == {}
    with pytest.raises(UsageError, match="does not exist"):
        load_registry_config(tmp_path / "absent.toml", required=True)
    assert load_registry_config(write(tmp_path, "")).hosts == {}
    assert load_registry_config(write(tmp_path, "[client]\nsource = 'dev'\n")).hosts == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[registry\n", "not valid TOML"),
        ("registy = 1\n", "unknown key(s) registy (did you mean 'registry'?)"),
        ("registry = 3\n", "registry must be a mapping"),
        ("[registry]\nca_cert = '/x'\n", "unknown key(s) ca_cert"),
        ("[registry.hosts.h]\ninsecure = 'yes please'\n", "hosts.h.insecure"),
        ("[registry]\nverify_certs = 'no'\n", "verify_certs must be true or false"),
        ("[registry]\nca_cert_paths = [3]\n", "ca_cert_paths must be a file path"),
        ("[registry]\ninsecure = 'dev.local'\n", "insecure must be a list"),
        ("[registry]\nhosts = ['a']\n", "hosts must be a mapping"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_registry_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_flags_override_the_file_and_hosts_keep_their_own(tmp_path: Path) -> None:
    config = load_registry_config(write(tmp_path, CONFIG.replace("~/", "/h/")))
    plain = resolve_tls(config)
    assert plain.default == TLSConfig(
        ("/etc/ssl/corp.pem",), "/certs/default.crt", "/certs/default.key", True
    )
    harbor = plain.for_registry("harbor.example.com")
    assert harbor.ca_files == ("/etc/ssl/corp.pem", "/etc/ssl/harbor.pem")
    assert (harbor.client_cert, harbor.client_key) == ("/h/harbor.crt", "/h/harbor.key")
    assert plain.for_registry("lab.example.com").verify is False
    assert plain.for_registry("elsewhere.io") == plain.default

    flagged = resolve_tls(
        config, ca_cert_paths=["/flag/ca.pem"], client_cert="/flag/c.pem", verify_certs=True
    )
    assert flagged.default.ca_files[0] == "/flag/ca.pem"
    assert flagged.default.client_key is None  # the flag's cert, not the file's key
    assert flagged.for_registry("harbor.example.com").client_cert == "/flag/c.pem"
    assert flagged.for_registry("lab.example.com").verify is True  # the flag is global


def test_key_without_certificate_is_refused() -> None:
    with pytest.raises(UsageError, match="--registry-client-cert"):
        resolve_tls(RegistryConfig(), client_key="/k.pem")
    with pytest.raises(UsageError, match="--registry-client-cert"):
        TLSConfig(client_key="/k.pem")


def test_insecure_hosts_merge_flags_list_and_hosts(tmp_path: Path) -> None:
    config = load_registry_config(write(tmp_path, CONFIG))
    assert insecure_hosts(config, ["a:1,b:2", " c "]) == {
        "a:1",
        "b:2",
        "c",
        "dev.local:5000",
        "lab.example.com",
    }


def test_default_config_path() -> None:
    home = Path("/home/u")
    assert default_config_path({}, home) == home / ".config/imgctl/config.toml"
    assert default_config_path({"XDG_CONFIG_HOME": "/x"}, home) == Path("/x/imgctl/config.toml")
    assert default_config_path({"IMGCTL_CONFIG": "/c.toml"}, home) == Path("/c.toml")
