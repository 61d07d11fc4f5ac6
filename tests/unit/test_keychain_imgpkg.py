"""imgpkg's keychain tests, transcribed: the order of sources, flags, docker config, IaaS switches.

Upstream (carvel-dev/imgpkg):

* ``pkg/imgpkg/registry/keychain_test.go`` at commit 96a99c0004b01f6403e49491044b52bf4397fbd9,
  the last version (removed with k8s-pkg-credentialprovider in 1a62d41e; HEAD 240e8789 has no
  unit test of the keychain). Its ``TestAuthProvidedViaEnvVars`` rows (HOSTNAME matching,
  order, invalid hostnames, token kinds) are in ``tests/unit/test_keychain_env.py``; the rest is
  here.
* ``pkg/imgpkg/registry/auth/iaas_keychain_test.go`` at the same commit.
* ``pkg/imgpkg/v1/registry_test.go`` ``TestOptsFromEnv`` (``IMGPKG_ACTIVE_KEYCHAINS``) at HEAD,
  commit 240e8789fa543b7c3c4561dee85866dd6c852c44.
* ``test/e2e/auth_test.go`` at HEAD: env credentials against a registry; those run through the CLI
  against real registries in ``tests/integration/test_auth.py`` (the ``imgpkg-env*`` sources).
* The documentation's rules (carvel-dev/carvel ``site/content/imgpkg/docs/v0.41.x/auth.md``, the
  "latest" page, commit 9e49dcdfcceb1c3244431eb3df4c7f5881274ce7).

Where upstream used a GCP metadata server as "the IaaS source", these rows use the two cloud
sources that need no network here: ghcr (``GITHUB_TOKEN``) and an Azure config with a client
secret; upstream's GCE ``google-dockercfg`` metadata attribute is not a source imgctl reads (see
docs/credentials.md, "Where imgctl differs from imgpkg").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imgctl.authn import ANONYMOUS, Credential, cloud_keychains, default_keychain
from imgctl.errors import CredentialError

FAKE = "some.fake.registry"
ENV_USER = Credential("user-env", "pass-env")
CLI_USER = Credential("user-cli", "pass-cli")


@pytest.fixture(autouse=True)
def process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IMGCTL_", "IMGPKG_", "GITHUB_", "DOCKER_", "REGISTRY_AUTH")):
            monkeypatch.delenv(name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def docker_config(directory: Path, key: str, user: str, password: str) -> dict[str, str]:
    """A config.json like upstream's (an ``http://.../v1/`` key); the env naming its directory."""
    directory.mkdir(parents=True, exist_ok=True)
    auths = {"auths": {key: {"username": user, "password": password}}}
    (directory / "config.json").write_text(json.dumps(auths))
    return {"DOCKER_CONFIG": str(directory)}


def env_entry(hostname: str) -> dict[str, str]:
    return {
        "IMGPKG_REGISTRY_USERNAME": "user-env",
        "IMGPKG_REGISTRY_PASSWORD": "pass-env",
        "IMGPKG_REGISTRY_HOSTNAME": hostname,
    }


# The IaaS sources: (registry, environment that gives it credentials, the credential).
def iaas_sources(tmp_path: Path) -> dict[str, tuple[str, dict[str, str], Credential]]:
    azure_json = tmp_path / "azure.json"
    azure_json.write_text(json.dumps({"aadClientId": "sp-id", "aadClientSecret": "sp-secret"}))
    return {
        "ghcr": (
            "ghcr.io",
            {"GITHUB_TOKEN": "gh-token", "GITHUB_ACTOR": "octocat"},
            Credential("octocat", "gh-token"),
        ),
        "azure": (
            "myregistry.azurecr.io",
            {"IMGPKG_REGISTRY_AZURE_CR_CONFIG": str(azure_json)},
            Credential("sp-id", "sp-secret"),
        ),
    }


async def resolve(
    environ: dict[str, str],
    home: Path,
    registry: str,
    *,
    flags: Credential | None = None,
    anonymous: bool = False,
) -> Credential:
    chain = default_keychain(environ, home, flags=flags, anonymous=anonymous)
    return await chain.resolve(registry, "imgpkg_test")


# ------------------------------------------------------------------------------------------
# TestAuthProvidedViaCLI


async def test_cli_username_and_password(home: Path) -> None:
    assert await resolve({}, home, FAKE, flags=Credential("user", "pass")) == Credential(
        "user", "pass"
    )


async def test_cli_anon(home: Path) -> None:
    assert await resolve({}, home, FAKE, anonymous=True) == ANONYMOUS


async def test_cli_token(home: Path) -> None:
    # authn.Bearer{Token}: sent as is, imgctl's registry token.
    assert await resolve({}, home, FAKE, flags=Credential(registry_token="TOKEN")) == Credential(
        registry_token="TOKEN"
    )


# ------------------------------------------------------------------------------------------
# TestAuthProvidedViaDefaultKeychain


async def test_docker_config_json(home: Path, tmp_path: Path) -> None:
    environ = docker_config(
        tmp_path / "docker", "http://localhost:9999/v1/", "user-config-json", "pass-config-json"
    )
    assert await resolve(environ, home, "localhost:9999") == Credential(
        "user-config-json", "pass-config-json"
    )


# ------------------------------------------------------------------------------------------
# TestOrderingOfAuthOpts


async def test_no_auth_is_anonymous(home: Path) -> None:
    assert await resolve({}, home, FAKE) == ANONYMOUS


@pytest.mark.parametrize("iaas", ["ghcr", "azure"])
async def test_env_creds_before_iaas(home: Path, tmp_path: Path, iaas: str) -> None:
    registry, environ, _ = iaas_sources(tmp_path)[iaas]
    assert await resolve(environ | env_entry(registry), home, registry) == ENV_USER


async def test_env_creds_before_cli_user_pass(home: Path) -> None:
    assert await resolve(env_entry(FAKE), home, FAKE, flags=CLI_USER) == ENV_USER


async def test_env_creds_before_cli_anon(home: Path) -> None:
    assert await resolve(env_entry(FAKE), home, FAKE, anonymous=True) == ENV_USER


async def test_env_creds_before_config_json(home: Path, tmp_path: Path) -> None:
    environ = docker_config(
        tmp_path / "docker", f"http://{FAKE}/v1/", "user-config-json", "pass-config-json"
    )
    assert await resolve(environ | env_entry(FAKE), home, FAKE) == ENV_USER


@pytest.mark.parametrize("iaas", ["ghcr", "azure"])
async def test_iaas_creds_before_cli_anon(home: Path, tmp_path: Path, iaas: str) -> None:
    registry, environ, expected = iaas_sources(tmp_path)[iaas]
    assert await resolve(environ, home, registry, anonymous=True) == expected


@pytest.mark.parametrize("iaas", ["ghcr", "azure"])
async def test_iaas_creds_before_cli_user_pass(home: Path, tmp_path: Path, iaas: str) -> None:
    registry, environ, expected = iaas_sources(tmp_path)[iaas]
    assert await resolve(environ, home, registry, flags=CLI_USER) == expected


async def test_cli_anon_before_config_json(home: Path, tmp_path: Path) -> None:
    environ = docker_config(
        tmp_path / "docker", f"http://{FAKE}/v1/", "user-config-json", "pass-config-json"
    )
    assert await resolve(environ, home, FAKE) == Credential("user-config-json", "pass-config-json")
    assert await resolve(environ, home, FAKE, anonymous=True) == ANONYMOUS


# ------------------------------------------------------------------------------------------
# TestAuthProvidedViaGCP ("Should be able to disable Iaas providers via env") and
# iaas_keychain_test.go TestFeatureFlagValues


@pytest.mark.parametrize("iaas", ["ghcr", "azure"])
async def test_iaas_sources_can_be_disabled_via_env(home: Path, tmp_path: Path, iaas: str) -> None:
    registry, environ, expected = iaas_sources(tmp_path)[iaas]
    assert await resolve(environ, home, registry) == expected
    environ = environ | {"IMGPKG_ENABLE_IAAS_AUTH": "false"}
    assert await resolve(environ, home, registry) == ANONYMOUS


def test_non_bool_iaas_flag_is_an_error(home: Path) -> None:
    with pytest.raises(CredentialError, match="IMGPKG_ENABLE_IAAS_AUTH='non-bool-value'"):
        default_keychain({"IMGPKG_ENABLE_IAAS_AUTH": "non-bool-value"}, home)


# ------------------------------------------------------------------------------------------
# v1/registry_test.go TestOptsFromEnv: IMGPKG_ACTIVE_KEYCHAINS, and the docs' keychain names
# (gke, aks, ecr, github). Upstream only parses the list there; registry.Keychain then refuses
# a name it does not know ("Unable to load keychain for acr, available keychains [aks, ecr,
# gke, github]"), so both upstream rows, which name "acr", end in that error.


@pytest.mark.parametrize("value", ["ecr,acr", "acr"])
def test_upstream_active_keychain_rows_name_an_unknown_keychain(value: str) -> None:
    with pytest.raises(CredentialError) as caught:
        cloud_keychains({"IMGPKG_ACTIVE_KEYCHAINS": value})
    message = str(caught.value)
    assert "'acr'" in message
    assert "IMGPKG_ACTIVE_KEYCHAINS" in message
    assert "aks, ecr, gke, github" in message


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("gke", ["gcp"]),
        ("aks", ["azure"]),
        ("ecr", ["ecr"]),
        ("github", ["ghcr"]),
        ("gke,aks,ecr", ["ecr", "gcp", "azure"]),  # the docs' "old behaviour"; order is imgctl's
        ("github, ecr", ["ecr", "ghcr"]),
        ("ECR", ["ecr"]),
        ("", ["ecr", "gcp", "azure", "ghcr"]),  # empty: not set
    ],
)
def test_active_keychains(value: str, names: list[str]) -> None:
    assert [k.name for k in cloud_keychains({"IMGPKG_ACTIVE_KEYCHAINS": value})] == names
    # imgctl's own variable, with imgctl's names too; it wins over imgpkg's.
    ours = {"IMGCTL_ACTIVE_KEYCHAINS": value, "IMGPKG_ACTIVE_KEYCHAINS": "github"}
    expected = names if value else ["ghcr"]
    assert [k.name for k in cloud_keychains(ours)] == expected


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        # imgpkg: IMGPKG_ENABLE_IAAS_AUTH=true turns every keychain on, whatever the list says.
        ({"IMGPKG_ENABLE_IAAS_AUTH": "true", "IMGPKG_ACTIVE_KEYCHAINS": "ecr"}, None),
        # imgctl: switched off is off.
        ({"IMGPKG_ENABLE_IAAS_AUTH": "false", "IMGPKG_ACTIVE_KEYCHAINS": "ecr"}, []),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "false", "IMGCTL_ACTIVE_KEYCHAINS": "gcp,azure"}, []),
        ({"IMGCTL_ACTIVE_KEYCHAINS": "gcp,azure"}, ["gcp", "azure"]),
        ({"IMGCTL_ACTIVE_KEYCHAINS": "ghcr"}, ["ghcr"]),
    ],
)
def test_active_keychains_and_the_iaas_switch(
    environ: dict[str, str], names: list[str] | None
) -> None:
    expected = ["ecr", "gcp", "azure", "ghcr"] if names is None else names
    assert [k.name for k in cloud_keychains(environ)] == expected


@pytest.mark.parametrize("value", ["ecr,", ",", "ecr,,gke", "s3"])
def test_bad_active_keychain_lists(value: str) -> None:
    with pytest.raises(CredentialError, match="IMGPKG_ACTIVE_KEYCHAINS"):
        cloud_keychains({"IMGPKG_ACTIVE_KEYCHAINS": value})


async def test_inactive_keychain_leaves_its_registry_to_later_sources(
    home: Path, tmp_path: Path
) -> None:
    registry, environ, expected = iaas_sources(tmp_path)["ghcr"]
    assert await resolve(environ | {"IMGPKG_ACTIVE_KEYCHAINS": "github"}, home, registry) == (
        expected
    )
    only_ecr = environ | {"IMGPKG_ACTIVE_KEYCHAINS": "ecr"}
    assert await resolve(only_ecr, home, registry) == ANONYMOUS
    assert await resolve(only_ecr, home, registry, flags=CLI_USER) == CLI_USER
