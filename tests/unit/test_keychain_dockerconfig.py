"""DockerConfigKeychain: docker/podman config files and real credential helper processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgctl.authn import Credential, DockerConfigKeychain, Resolution
from imgctl.errors import CredentialError

SECRET = "s3cr3t-Pa55w0rd-do-not-print"
TOKEN = "idtok-9f8e7d6c5b4a-do-not-print"
HUB_URL = "https://index.docker.io/v1/"

# A real docker-credential-helpers program: server URL on stdin, JSON on stdout. It logs each
# call next to itself and answers from answers.json ({helper: {server: reply}}).
HELPER_SCRIPT = """\
#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(sys.argv[0])[len("docker-credential-"):]
server = sys.stdin.read()
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"helper": name, "argv": sys.argv[1:], "server": server}}) + "\\n")
with open(os.path.join(here, "answers.json")) as f:
    table = json.load(f)
reply = table.get(name, {{}}).get(server.strip())
if reply is None:
    sys.stdout.write("credentials not found in native keychain\\n")
    sys.exit(1)
time.sleep(reply.get("sleep", 0))
sys.stdout.write(reply.get("stdout", ""))
sys.stderr.write(reply.get("stderr", ""))
sys.exit(reply.get("exit", 0))
"""


class Helpers:
    """Credential helper scripts in a bin directory that is first on PATH."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.table: dict[str, dict[str, dict[str, Any]]] = {}
        self._save()

    def install(self, name: str) -> Path:
        path = self.bin / f"docker-credential-{name}"
        path.write_text(HELPER_SCRIPT.format(python=sys.executable))
        path.chmod(0o755)
        self.table.setdefault(name, {})
        self._save()
        return path

    def answer(self, name: str, server: str, username: str, secret: str) -> None:
        reply = {"ServerURL": server, "Username": username, "Secret": secret}
        self.reply(name, server, stdout=json.dumps(reply))

    def reply(self, name: str, server: str, **reply: Any) -> None:
        if name not in self.table:
            self.install(name)
        self.table[name][server] = reply
        self._save()

    def calls(self) -> list[dict[str, Any]]:
        log = self.bin / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def _save(self) -> None:
        (self.bin / "answers.json").write_text(json.dumps(self.table))


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return Helpers(bin_dir)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make(home: Path) -> Callable[..., DockerConfigKeychain]:
    def build(**environ: str) -> DockerConfigKeychain:
        return DockerConfigKeychain(environ, home)

    return build


def write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def auth(username: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


def docker_config(home: Path) -> Path:
    return home / ".docker" / "config.json"


def podman_config(home: Path) -> Path:
    return home / ".config" / "containers" / "auth.json"


def assert_no_secret(value: object) -> None:
    text = str(value) + repr(value)
    if isinstance(value, CredentialError):
        text += str(value.hint) + value.message
    if isinstance(value, Resolution):
        text += value.detail + value.source + repr(value.credential)
    for secret in (SECRET, TOKEN, base64.b64encode(f"alice:{SECRET}".encode()).decode()):
        assert secret not in text


# -- file locations and order -------------------------------------------------------------


async def test_home_docker_config_auths_entry(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("alice", SECRET)}})

    answer = await make().explain("ghcr.io", "org/app")

    assert answer.credential == Credential(username="alice", password=SECRET)
    assert answer.source == "docker-config"
    assert answer.detail == '~/.docker/config.json auths["ghcr.io"]'
    assert_no_secret(answer)


async def test_docker_config_variable_replaces_home_docker_dir(
    tmp_path: Path, home: Path, make: Any
) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("home-user", SECRET)}})
    elsewhere = tmp_path / "dockercfg"
    write(elsewhere / "config.json", {"auths": {"ghcr.io": auth("env-user", SECRET)}})

    answer = await make(DOCKER_CONFIG=str(elsewhere)).explain("ghcr.io", "org/app")

    assert answer.credential.username == "env-user"
    assert answer.detail == f'{elsewhere / "config.json"} auths["ghcr.io"]'


async def test_docker_config_variable_with_no_file_does_not_fall_back_to_home_docker(
    tmp_path: Path, home: Path, make: Any
) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("home-user", SECRET)}})

    keychain = make(DOCKER_CONFIG=str(tmp_path / "empty"))
    answer = await keychain.explain("ghcr.io", "org/app")

    assert not answer.found
    assert keychain.files[0] == tmp_path / "empty" / "config.json"


@pytest.mark.parametrize("location", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "podman-home"])
async def test_each_podman_location_is_read(
    tmp_path: Path, home: Path, make: Any, location: str
) -> None:
    environ: dict[str, str] = {}
    if location == "REGISTRY_AUTH_FILE":
        path = write(tmp_path / "elsewhere" / "auth.json", {})
        environ["REGISTRY_AUTH_FILE"] = str(path)
    elif location == "XDG_RUNTIME_DIR":
        path = write(tmp_path / "run" / "containers" / "auth.json", {})
        environ["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    else:
        path = write(podman_config(home), {})
    write(path, {"auths": {"quay.io": auth("podman-user", SECRET)}})

    answer = await make(**environ).explain("quay.io", "org/app")

    assert answer.credential == Credential(username="podman-user", password=SECRET)
    shown = "~/.config/containers/auth.json" if location == "podman-home" else str(path)
    assert answer.detail == f'{shown} auths["quay.io"]'


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        (["docker", "authfile", "runtime", "podman"], "docker"),
        (["authfile", "runtime", "podman"], "authfile"),
        (["runtime", "podman"], "runtime"),
        (["podman"], "podman"),
        (["docker", "podman"], "docker"),
        (["authfile", "podman"], "authfile"),
    ],
)
async def test_first_file_with_an_answer_wins(
    tmp_path: Path, home: Path, make: Any, present: list[str], winner: str
) -> None:
    paths = {
        "docker": docker_config(home),
        "authfile": tmp_path / "authfile.json",
        "runtime": tmp_path / "run" / "containers" / "auth.json",
        "podman": podman_config(home),
    }
    for name, path in paths.items():
        # Files without the registry's entry exist too: they must be passed over.
        entries = {"quay.io": auth(name, SECRET)} if name in present else {"other.io": {}}
        write(path, {"auths": entries})

    keychain = make(
        REGISTRY_AUTH_FILE=str(paths["authfile"]), XDG_RUNTIME_DIR=str(tmp_path / "run")
    )
    answer = await keychain.explain("quay.io", "org/app")

    assert answer.credential.username == winner
    assert keychain.files == tuple(paths.values())


async def test_no_entry_anywhere_names_the_files_consulted(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("alice", SECRET)}})
    write(podman_config(home), {"auths": {"docker.io": auth("alice", SECRET)}})

    answer = await make().explain("quay.io", "org/app")

    assert not answer.found
    assert answer.detail == (
        "no entry for quay.io in ~/.docker/config.json, ~/.config/containers/auth.json"
    )


async def test_a_file_named_twice_is_consulted_once(home: Path, make: Any) -> None:
    path = write(podman_config(home), {"auths": {"ghcr.io": {}}})

    keychain = make(REGISTRY_AUTH_FILE=str(path))
    answer = await keychain.explain("quay.io", "org/app")

    assert keychain.files == (docker_config(home), path)
    assert answer.detail == "no entry for quay.io in ~/.config/containers/auth.json"


async def test_no_files_at_all_is_anonymous_and_says_where_it_looked(
    make: Any,
) -> None:
    answer = await make().explain("quay.io", "org/app")

    assert not answer.found
    assert "~/.docker/config.json" in answer.detail
    assert "~/.config/containers/auth.json" in answer.detail


async def test_empty_entry_is_no_answer_so_the_next_file_is_consulted(
    home: Path, make: Any
) -> None:
    # docker login with a credsStore leaves an empty placeholder in auths.
    write(docker_config(home), {"auths": {"quay.io": {}}})
    write(podman_config(home), {"auths": {"quay.io": auth("podman-user", SECRET)}})

    answer = await make().explain("quay.io", "org/app")

    assert answer.credential.username == "podman-user"


async def test_empty_file_counts_as_empty_config(home: Path, make: Any) -> None:
    write(docker_config(home), "  \n")
    write(podman_config(home), {"auths": {"quay.io": auth("podman-user", SECRET)}})

    assert (await make().resolve("quay.io", "org/app")).username == "podman-user"


async def test_from_environment_uses_process_environment_and_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_home = tmp_path / "fakehome"
    for variable in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(fake_home))
    write(podman_config(fake_home), {"auths": {"quay.io": auth("from-home", SECRET)}})
    authfile = write(tmp_path / "a.json", {"auths": {"ghcr.io": auth("from-env", SECRET)}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(authfile))

    keychain = DockerConfigKeychain.from_environment()

    assert (await keychain.resolve("quay.io", "org/app")).username == "from-home"
    assert (await keychain.resolve("ghcr.io", "org/app")).username == "from-env"


# -- auths entries -------------------------------------------------------------------------


async def test_username_and_password_fields(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": {"username": "bob", "password": SECRET}}})

    assert await make().resolve("ghcr.io", "x/y") == Credential(username="bob", password=SECRET)


async def test_identitytoken_entry_keeps_username(home: Path, make: Any) -> None:
    # What docker login writes for a registry that returned a refresh token.
    entry = {**auth("alice", ""), "identitytoken": TOKEN}
    write(docker_config(home), {"auths": {"myacr.azurecr.io": entry}})

    answer = await make().explain("myacr.azurecr.io", "app")

    assert answer.credential == Credential(username="alice", identity_token=TOKEN)
    assert answer.credential.kind == "identity-token"
    assert_no_secret(answer)


async def test_registrytoken_entry(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": {"registrytoken": TOKEN}}})

    credential = await make().resolve("ghcr.io", "x/y")

    assert credential == Credential(registry_token=TOKEN)
    assert credential.kind == "registry-token"


@pytest.mark.parametrize(
    "key",
    [
        "https://index.docker.io/v1/",
        "http://index.docker.io/v1/",
        "index.docker.io",
        "registry-1.docker.io",
        "docker.io",
        "https://registry-1.docker.io/v2/",
        "DOCKER.IO",
    ],
)
async def test_docker_hub_keys_all_mean_docker_io(home: Path, make: Any, key: str) -> None:
    write(docker_config(home), {"auths": {key: auth("hubuser", SECRET)}})

    answer = await make().explain("docker.io", "library/alpine")

    assert answer.credential.username == "hubuser"
    assert answer.detail == f"~/.docker/config.json auths[{json.dumps(key)}]"


async def test_docker_hub_entry_does_not_leak_to_other_registries(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {HUB_URL: auth("hubuser", SECRET)}})

    assert not (await make().explain("index.example.io", "library/alpine")).found
    assert not (await make().explain("quay.io", "library/alpine")).found


async def test_docker_written_and_podman_written_hub_keys_prefer_dockers(
    home: Path, make: Any
) -> None:
    # Aliases listed first in the file lose to the spelling the tools write themselves.
    write(
        docker_config(home),
        {"auths": {"registry-1.docker.io": auth("alias", SECRET), HUB_URL: auth("legacy", SECRET)}},
    )

    assert (await make().resolve("docker.io", "library/alpine")).username == "legacy"


@pytest.mark.parametrize(
    "key",
    [
        "registry.example.com:5000",
        "registry.example.com:5000/",
        "https://registry.example.com:5000",
        "https://registry.example.com:5000/v2/",
        "http://registry.example.com:5000/v1/",
        "registry.example.com:5000/v2/",
        "Registry.Example.com:5000",
    ],
)
async def test_key_normalisation(home: Path, make: Any, key: str) -> None:
    write(docker_config(home), {"auths": {key: auth("alice", SECRET)}})
    keychain = make()

    assert (await keychain.resolve("registry.example.com:5000", "a/b")).username == "alice"
    assert not (await keychain.explain("registry.example.com", "a/b")).found
    assert not (await keychain.explain("registry.example.com:5001", "a/b")).found


async def test_repository_scoped_keys_most_specific_first(home: Path, make: Any) -> None:
    write(
        podman_config(home),
        {
            "auths": {
                "quay.io": auth("host", SECRET),
                "quay.io/org": auth("org", SECRET),
                "quay.io/org/repo": auth("repo", SECRET),
            }
        },
    )
    keychain = make()

    assert (await keychain.resolve("quay.io", "org/repo")).username == "repo"
    assert (await keychain.resolve("quay.io", "org/repo/sub")).username == "repo"
    assert (await keychain.resolve("quay.io", "org/other")).username == "org"
    assert (await keychain.resolve("quay.io", "elsewhere/x")).username == "host"
    answer = await keychain.explain("quay.io", "org/repo")
    assert answer.detail == '~/.config/containers/auth.json auths["quay.io/org/repo"]'


async def test_scoped_keys_match_whole_segments_only(home: Path, make: Any) -> None:
    write(
        podman_config(home),
        {"auths": {"quay.io/core": auth("core", SECRET), "quay.io/org/re": auth("re", SECRET)}},
    )
    keychain = make()

    assert not (await keychain.explain("quay.io", "coreos/etcd")).found
    assert not (await keychain.explain("quay.io", "org/repo")).found
    assert (await keychain.resolve("quay.io", "core/etcd")).username == "core"
    write(
        podman_config(home),
        {"auths": {"quay.io/core": auth("core", SECRET), "quay.io": auth("host", SECRET)}},
    )
    assert (await make().resolve("quay.io", "coreos/etcd")).username == "host"


async def test_scoped_key_does_not_match_another_host(home: Path, make: Any) -> None:
    write(podman_config(home), {"auths": {"quay.io/org": auth("org", SECRET)}})

    assert not (await make().explain("ghcr.io", "org/app")).found


async def test_empty_scoped_entry_falls_back_to_host_entry(home: Path, make: Any) -> None:
    write(podman_config(home), {"auths": {"quay.io/org": {}, "quay.io": auth("host", SECRET)}})

    assert (await make().resolve("quay.io", "org/app")).username == "host"


# -- malformed files -------------------------------------------------------------------------


async def test_malformed_json_names_the_file_and_not_the_secret(home: Path, make: Any) -> None:
    text = json.dumps({"auths": {"ghcr.io": auth("alice", SECRET)}})
    write(docker_config(home), text[:-1] + ",,}")
    keychain = make()  # files are read lazily: constructing never fails

    with pytest.raises(CredentialError) as raised:
        await keychain.explain("ghcr.io", "org/app")

    assert "~/.docker/config.json" in str(raised.value)
    assert "not valid JSON" in str(raised.value)
    assert "line 1" in str(raised.value)
    assert_no_secret(raised.value)
    assert raised.value.__context__ is None  # no JSONDecodeError holding the document


async def test_malformed_file_named_with_its_variable(tmp_path: Path, make: Any) -> None:
    path = write(tmp_path / "auth.json", "{not json")

    with pytest.raises(CredentialError) as raised:
        await make(REGISTRY_AUTH_FILE=str(path)).explain("ghcr.io", "org/app")

    assert str(path) in str(raised.value)
    assert "$REGISTRY_AUTH_FILE" in str(raised.value)


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ([], "top level must be an object, not array"),
        ({"auths": []}, "auths must be an object, not array"),
        ({"auths": {"ghcr.io": "x"}}, 'auths["ghcr.io"] must be an object, not string'),
        ({"auths": {"ghcr.io": {"auth": 7}}}, 'auths["ghcr.io"].auth must be a string, not number'),
        ({"credHelpers": {"ghcr.io": True}}, 'credHelpers["ghcr.io"] must be a string'),
        ({"credHelpers": "gh"}, "credHelpers must be an object, not string"),
        ({"credsStore": ["desktop"]}, "credsStore must be a string, not array"),
        ({"credsStore": "../../bin/sh"}, 'credsStore "../../bin/sh" is not a credential helper'),
    ],
)
async def test_wrong_types_name_the_file_and_the_field(
    home: Path, make: Any, document: object, named: str
) -> None:
    write(docker_config(home), document)

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    assert str(raised.value).startswith("~/.docker/config.json: ")
    assert named in str(raised.value)


async def test_wrong_password_type_does_not_print_the_value(home: Path, make: Any) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": {"username": "a", "password": [SECRET]}}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    assert 'auths["ghcr.io"].password must be a string' in str(raised.value)
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"!!{SECRET}!!", "is not valid base64"),
        (base64.b64encode(SECRET.encode()).decode(), "does not decode to username:password"),
        (base64.b64encode(b"\xff\xfe:" + SECRET.encode()).decode(), "does not decode to UTF-8"),
    ],
)
async def test_bad_auth_value_names_file_and_key_never_value(
    home: Path, make: Any, value: str, problem: str
) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": {"auth": value}}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    message = str(raised.value)
    assert '~/.docker/config.json: auths["ghcr.io"].auth' in message
    assert problem in message
    assert value not in message
    assert SECRET not in message
    assert raised.value.__context__ is None


async def test_auth_without_padding_is_accepted(home: Path, make: Any) -> None:
    value = base64.b64encode(b"alice:pw1").decode().rstrip("=")
    write(docker_config(home), {"auths": {"ghcr.io": {"auth": value}}})

    assert await make().resolve("ghcr.io", "x") == Credential(username="alice", password="pw1")


async def test_bad_entry_for_another_registry_does_not_break_lookups(home: Path, make: Any) -> None:
    write(
        docker_config(home),
        {"auths": {"broken.io": {"auth": "%%%"}, "ghcr.io": auth("alice", SECRET)}},
    )

    assert (await make().resolve("ghcr.io", "x")).username == "alice"


async def test_later_files_are_not_read_when_an_earlier_one_answers(
    tmp_path: Path, home: Path, make: Any
) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("alice", SECRET)}})
    broken = write(tmp_path / "auth.json", "{broken")
    keychain = make(REGISTRY_AUTH_FILE=str(broken))

    assert (await keychain.resolve("ghcr.io", "x")).username == "alice"
    with pytest.raises(CredentialError, match="REGISTRY_AUTH_FILE"):
        await keychain.resolve("quay.io", "x")


async def test_files_are_parsed_once(home: Path, make: Any) -> None:
    path = write(docker_config(home), {"auths": {"ghcr.io": auth("first", SECRET)}})
    keychain = make()
    assert (await keychain.resolve("ghcr.io", "x")).username == "first"

    write(path, {"auths": {"ghcr.io": auth("second", SECRET)}})

    assert (await keychain.resolve("ghcr.io", "x")).username == "first"
    assert (await make().resolve("ghcr.io", "x")).username == "second"


# -- credential helpers ----------------------------------------------------------------------


async def test_cred_helper_protocol(home: Path, make: Any, helpers: Helpers) -> None:
    helpers.answer("test", "ghcr.io", "gh-user", SECRET)
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})

    answer = await make().explain("ghcr.io", "org/app")

    assert answer.credential == Credential(username="gh-user", password=SECRET)
    assert answer.detail == (
        '~/.docker/config.json credHelpers["ghcr.io"] -> docker-credential-test'
    )
    assert helpers.calls() == [{"helper": "test", "argv": ["get"], "server": "ghcr.io"}]
    assert_no_secret(answer)


async def test_cred_helpers_over_creds_store_over_auths(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.answer("test", "ghcr.io", "from-cred-helpers", SECRET)
    helpers.answer("store", "ghcr.io", "from-store", SECRET)
    helpers.answer("store", "quay.io", "from-store", SECRET)
    write(
        docker_config(home),
        {
            "credHelpers": {"ghcr.io": "test"},
            "credsStore": "store",
            "auths": {
                "ghcr.io": auth("from-auths", SECRET),
                "quay.io": auth("from-auths", SECRET),
            },
        },
    )
    keychain = make()

    assert (await keychain.resolve("ghcr.io", "a")).username == "from-cred-helpers"
    quay = await keychain.explain("quay.io", "a")
    assert quay.credential.username == "from-store"
    assert quay.detail == '~/.docker/config.json credsStore "store" -> docker-credential-store'
    assert [(c["helper"], c["server"]) for c in helpers.calls()] == [
        ("test", "ghcr.io"),
        ("store", "quay.io"),
    ]


async def test_cred_helper_for_another_host_is_not_run(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.answer("test", "ghcr.io", "gh-user", SECRET)
    write(
        docker_config(home),
        {"credHelpers": {"ghcr.io": "test"}, "auths": {"quay.io": auth("from-auths", SECRET)}},
    )

    assert (await make().resolve("quay.io", "a")).username == "from-auths"
    assert helpers.calls() == []


async def test_helper_without_credentials_falls_back_to_auths(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.install("store")  # knows nothing: exits 1 with "credentials not found"
    write(
        docker_config(home),
        {"credsStore": "store", "auths": {"quay.io": auth("from-auths", SECRET)}},
    )

    answer = await make().explain("quay.io", "a")

    assert answer.credential.username == "from-auths"
    assert answer.detail.startswith('~/.docker/config.json auths["quay.io"] (')
    assert "docker-credential-store has no credentials for quay.io" in answer.detail
    assert len(helpers.calls()) == 1


async def test_helper_without_credentials_and_no_auths_moves_to_next_file(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.install("store")
    write(docker_config(home), {"credsStore": "store"})
    write(podman_config(home), {"auths": {"quay.io": auth("podman-user", SECRET)}})
    keychain = make()

    assert (await keychain.resolve("quay.io", "a")).username == "podman-user"
    missing = await keychain.explain("ghcr.io", "a")
    assert not missing.found
    assert "no entry for ghcr.io in ~/.docker/config.json, ~/.config/containers/auth.json" in (
        missing.detail
    )
    assert 'credsStore "store" -> docker-credential-store has no credentials' in missing.detail


async def test_helper_answering_token_username_gives_identity_token(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.answer("test", "myacr.azurecr.io", "<token>", TOKEN)
    write(docker_config(home), {"credHelpers": {"myacr.azurecr.io": "test"}})

    answer = await make().explain("myacr.azurecr.io", "app")

    assert answer.credential == Credential(identity_token=TOKEN)
    assert_no_secret(answer)


@pytest.mark.parametrize("key", ["docker.io", HUB_URL, "index.docker.io"])
async def test_docker_hub_helper_is_asked_for_the_legacy_url(
    home: Path, make: Any, helpers: Helpers, key: str
) -> None:
    helpers.answer("test", HUB_URL, "hubuser", SECRET)
    write(docker_config(home), {"credHelpers": {key: "test"}})

    assert (await make().resolve("docker.io", "library/alpine")).username == "hubuser"
    assert [c["server"] for c in helpers.calls()] == [HUB_URL]


async def test_helper_server_url_keeps_the_port(home: Path, make: Any, helpers: Helpers) -> None:
    helpers.answer("store", "localhost:5000", "local", SECRET)
    write(docker_config(home), {"credsStore": "store"})

    assert (await make().resolve("localhost:5000", "app")).username == "local"
    assert [c["server"] for c in helpers.calls()] == ["localhost:5000"]


async def test_helper_answers_are_cached(home: Path, make: Any, helpers: Helpers) -> None:
    helpers.answer("test", "ghcr.io", "gh-user", SECRET)
    helpers.install("store")
    write(
        docker_config(home),
        {"credHelpers": {"ghcr.io": "test"}, "credsStore": "store"},
    )
    keychain = make()

    first = await keychain.resolve("ghcr.io", "org/app")
    second = await keychain.resolve("ghcr.io", "org/other")
    # "not found" is an answer too, and is cached the same way.
    await keychain.resolve("quay.io", "a")
    await keychain.resolve("quay.io", "b")

    assert first == second == Credential(username="gh-user", password=SECRET)
    assert [(c["helper"], c["server"]) for c in helpers.calls()] == [
        ("test", "ghcr.io"),
        ("store", "quay.io"),
    ]
    await make().resolve("ghcr.io", "org/app")
    assert len(helpers.calls()) == 3  # the cache belongs to the instance


async def test_concurrent_resolves_run_the_helper_once(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.reply(
        "test",
        "ghcr.io",
        sleep=0.3,
        stdout=json.dumps({"Username": "gh-user", "Secret": SECRET}),
    )
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})
    keychain = make()

    answers = await asyncio.gather(*(keychain.resolve("ghcr.io", f"r{i}") for i in range(5)))

    assert {a.username for a in answers} == {"gh-user"}
    assert len(helpers.calls()) == 1


async def test_missing_helper_names_program_and_file(
    home: Path, make: Any, helpers: Helpers
) -> None:
    write(
        docker_config(home),
        {"credHelpers": {"ghcr.io": "imgctl-absent"}, "auths": {"ghcr.io": auth("a", SECRET)}},
    )

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    message = str(raised.value)
    assert "docker-credential-imgctl-absent" in message
    assert "~/.docker/config.json" in message
    assert 'credHelpers["ghcr.io"]' in message
    assert raised.value.hint is not None
    assert "install docker-credential-imgctl-absent" in raised.value.hint
    assert_no_secret(raised.value)


async def test_missing_creds_store_names_program_and_variable(
    tmp_path: Path, make: Any, helpers: Helpers
) -> None:
    path = write(tmp_path / "auth.json", {"credsStore": "imgctl-absent"})

    with pytest.raises(CredentialError) as raised:
        await make(REGISTRY_AUTH_FILE=str(path)).explain("ghcr.io", "org/app")

    assert "docker-credential-imgctl-absent" in str(raised.value)
    assert "$REGISTRY_AUTH_FILE" in str(raised.value)


async def test_helper_failure_shows_its_complaint(home: Path, make: Any, helpers: Helpers) -> None:
    helpers.reply("test", "ghcr.io", exit=3, stderr="keyring is locked\nmore detail\n")
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    message = str(raised.value)
    assert "docker-credential-test failed for ghcr.io" in message
    assert "exit status 3" in message
    assert message.endswith(": keyring is locked")
    assert "~/.docker/config.json" in message


async def test_helper_failure_never_echoes_a_secret_it_printed(
    home: Path, make: Any, helpers: Helpers
) -> None:
    answer = json.dumps({"ServerURL": "ghcr.io", "Username": "u", "Secret": SECRET})
    helpers.reply("test", "ghcr.io", exit=1, stdout=answer)
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    assert "exit status 1" in str(raised.value)
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    "stdout",
    [
        f"Secret: {SECRET}",
        SECRET,
        json.dumps([SECRET]),
        json.dumps({"Username": "u", "Secret": [SECRET]}),
    ],
)
async def test_helper_bad_answer_is_an_error_without_the_output(
    home: Path, make: Any, helpers: Helpers, stdout: str
) -> None:
    helpers.reply("test", "ghcr.io", stdout=stdout)
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    assert "docker-credential-test printed" in str(raised.value)
    assert_no_secret(raised.value)
    assert raised.value.__context__ is None


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"Username": "u", "Secret": [SECRET]}, "printed Secret as an array, not a string"),
        ({"Username": "u", "Secret": {"k": SECRET}}, "printed Secret as an object, not a string"),
        ({"Username": 7, "Secret": SECRET}, "printed Username as a number, not a string"),
        ({"Username": True, "Secret": SECRET}, "printed Username as a boolean, not a string"),
    ],
)
async def test_helper_answer_of_another_type_names_the_type(
    home: Path, make: Any, helpers: Helpers, answer: dict[str, object], says: str
) -> None:
    helpers.reply("test", "ghcr.io", stdout=json.dumps(answer))
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})

    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")

    assert says in str(raised.value)
    assert_no_secret(raised.value)


async def test_helper_errors_are_not_cached(home: Path, make: Any, helpers: Helpers) -> None:
    helpers.reply("test", "ghcr.io", exit=2, stderr="transient\n")
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})
    keychain = make()
    with pytest.raises(CredentialError, match="transient"):
        await keychain.resolve("ghcr.io", "a")

    helpers.answer("test", "ghcr.io", "gh-user", SECRET)

    assert (await keychain.resolve("ghcr.io", "a")).username == "gh-user"


async def test_helper_timeout(home: Path, helpers: Helpers) -> None:
    helpers.reply("test", "ghcr.io", sleep=30, stdout="{}")
    write(docker_config(home), {"credHelpers": {"ghcr.io": "test"}})
    keychain = DockerConfigKeychain({}, home, helper_timeout=0.5)

    started = time.monotonic()
    with pytest.raises(CredentialError) as raised:
        await keychain.explain("ghcr.io", "org/app")

    assert time.monotonic() - started < 10
    assert "docker-credential-test did not answer within 0.5 s" in str(raised.value)


async def test_helper_with_empty_answer_falls_back_to_auths(
    home: Path, make: Any, helpers: Helpers
) -> None:
    helpers.reply("test", "ghcr.io", stdout=json.dumps({"Username": "", "Secret": ""}))
    write(
        docker_config(home),
        {"credHelpers": {"ghcr.io": "test"}, "auths": {"ghcr.io": auth("from-auths", SECRET)}},
    )

    assert (await make().resolve("ghcr.io", "a")).username == "from-auths"


# -- repr ------------------------------------------------------------------------------------


async def test_repr_has_no_secrets(home: Path, make: Any, helpers: Helpers) -> None:
    write(docker_config(home), {"auths": {"ghcr.io": auth("alice", SECRET)}})
    keychain = make()
    credential = await keychain.resolve("ghcr.io", "a")

    assert_no_secret(keychain)
    assert_no_secret(credential)
    assert "~/.docker/config.json" in repr(keychain)


async def test_an_oversized_file_is_refused_before_it_is_parsed(home: Path, make: Any) -> None:
    # One reader bounds the file for the keychain and for `imgctl registry login` alike.
    from imgctl.authn._dockerconfig import MAX_CONFIG_BYTES

    padding = " " * MAX_CONFIG_BYTES
    write(docker_config(home), json.dumps({"auths": {"ghcr.io": auth("alice", SECRET)}}) + padding)
    with pytest.raises(CredentialError) as raised:
        await make().explain("ghcr.io", "org/app")
    assert f"is larger than {MAX_CONFIG_BYTES} bytes" in str(raised.value)
    assert_no_secret(raised.value)
