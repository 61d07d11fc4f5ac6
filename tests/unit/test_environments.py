"""Environments from IMGCTL_REGISTRY_*/IMGCTL_SPA_*, the policy file, and Promoter's checks.

Pure: no registry, no network. ``Promoter.plan`` never touches its ``RegistryClient``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imgctl.errors import ImgctlError, PromotionError, UsageError
from imgctl.oci import Digest
from imgctl.promotion.environments import Environment, Environments, Policy, load_policy
from imgctl.promotion.service import Promoter
from imgctl.promotion.spa import SpaRef
from imgctl.remote import RegistryClient
from imgctl.server._status import status_name

DIGEST = "sha256:" + "a" * 64
VAR = "IMGCTL_REGISTRY_PROD"


def one(value: str, variable: str = VAR) -> Environment:
    environments = Environments.from_environment({variable: value})
    environment: Environment
    [environment] = list(environments)
    return environment


def usage_error(environ: dict[str, str]) -> UsageError:
    with pytest.raises(UsageError) as caught:
        Environments.from_environment(environ)
    return caught.value


# ---------------------------------------------------------------- Environments.from_environment


@pytest.mark.parametrize(
    ("value", "registry", "prefix", "described"),
    [
        pytest.param(
            "registry.example.com", "registry.example.com", "", "registry.example.com", id="host"
        ),
        pytest.param(
            "registry.example.com/prod",
            "registry.example.com",
            "prod",
            "registry.example.com/prod",
            id="host-prefix",
        ),
        pytest.param(
            "localhost:5000/team/sub",
            "localhost:5000",
            "team/sub",
            "localhost:5000/team/sub",
            id="localhost-port-nested-prefix",
        ),
        pytest.param(
            "registry.example.com:5443/prod",
            "registry.example.com:5443",
            "prod",
            "registry.example.com:5443/prod",
            id="host-port-prefix",
        ),
        pytest.param(
            "registry.example.com/prod/",
            "registry.example.com",
            "prod",
            "registry.example.com/prod",
            id="trailing-slash",
        ),
        pytest.param(
            "registry.example.com/team/sub//",
            "registry.example.com",
            "team/sub",
            "registry.example.com/team/sub",
            id="trailing-slashes",
        ),
        pytest.param(
            "registry.example.com/",
            "registry.example.com",
            "",
            "registry.example.com",
            id="host-trailing-slash",
        ),
        pytest.param(
            "  registry.example.com/prod  ",
            "registry.example.com",
            "prod",
            "registry.example.com/prod",
            id="surrounding-blanks",
        ),
        pytest.param(
            "registry.example.com/my-team/app_s.v2",
            "registry.example.com",
            "my-team/app_s.v2",
            "registry.example.com/my-team/app_s.v2",
            id="prefix-separators",
        ),
        pytest.param("docker.io", "docker.io", "", "docker.io", id="docker-hub"),
        pytest.param("docker.io/myorg", "docker.io", "myorg", "docker.io/myorg", id="hub-org"),
        pytest.param(
            "index.docker.io/myorg", "docker.io", "myorg", "docker.io/myorg", id="hub-legacy-name"
        ),
        pytest.param("[::1]:5000", "[::1]:5000", "", "[::1]:5000", id="ipv6-port"),
        pytest.param(
            "[::1]:5000/team", "[::1]:5000", "team", "[::1]:5000/team", id="ipv6-port-prefix"
        ),
        pytest.param("localhost", "localhost", "", "localhost", id="localhost"),
        pytest.param("registry:5000", "registry:5000", "", "registry:5000", id="dotless-port"),
        pytest.param("10.0.0.7:5000/ci", "10.0.0.7:5000", "ci", "10.0.0.7:5000/ci", id="ipv4"),
    ],
)
def test_registry_values(value: str, registry: str, prefix: str, described: str) -> None:
    environment = one(value)
    assert environment == Environment("prod", registry, prefix, None)
    assert environment.describe() == described
    expected_repository = f"{prefix}/app" if prefix else "app"
    assert environment.repository("app") == expected_repository


def test_registry_docker_hub_alias_registry_1() -> None:
    assert one("registry-1.docker.io/myorg") == Environment("prod", "docker.io", "myorg")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is empty", id="blank"),
        pytest.param("/", "is empty", id="slash-only"),
        pytest.param("https://registry.example.com", "URL scheme", id="https-scheme"),
        pytest.param("http://localhost:5000/prod", "URL scheme", id="http-scheme"),
        pytest.param("registry", "'registry' is not a registry host", id="bare-word"),
        pytest.param("registry/prod", "'registry' is not a registry host", id="bare-word-prefix"),
        pytest.param("registry_example.com", "not a valid host", id="underscore-in-host"),
        pytest.param("registry.example.com:99999", "out of range", id="port-range"),
        pytest.param("registry.example.com/Prod", "prefix component 'Prod'", id="uppercase-prefix"),
        pytest.param("registry.example.com/team/../x", "prefix component '..'", id="dotdot-prefix"),
        pytest.param("registry.example.com//x", "prefix component ''", id="empty-component"),
        pytest.param("registry.example.com/a b", "prefix component 'a b'", id="blank-in-prefix"),
        pytest.param("registry.example.com/-team", "prefix component '-team'", id="leading-dash"),
    ],
)
def test_registry_value_errors_name_the_variable(value: str, problem: str) -> None:
    error = usage_error({"PATH": "/usr/bin", VAR: value})
    assert error.message.startswith(VAR)
    assert problem in error.message


@pytest.mark.parametrize(
    "variable",
    [
        "IMGCTL_REGISTRY_",
        "IMGCTL_REGISTRY_A-B",
        "IMGCTL_REGISTRY_DEV.EU",
        "IMGCTL_REGISTRY__LEADING",
        "IMGCTL_SPA_",
        "IMGCTL_SPA_A-B",
    ],
)
def test_bad_environment_names_name_the_variable(variable: str) -> None:
    error = usage_error({variable: "registry.example.com"})
    assert error.message.startswith(f"{variable}: environment name")


def test_empty_spa_suffix_names_the_variable() -> None:
    error = usage_error({"IMGCTL_SPA_PROD": "  "})
    assert error.message == "IMGCTL_SPA_PROD is empty"
    assert error.hint is not None


@pytest.mark.parametrize("lookup", ["prod", "Prod", "PROD", " prod "])
def test_names_are_case_insensitive(lookup: str) -> None:
    environments = Environments.from_environment(
        {"IMGCTL_REGISTRY_PROD": "registry.example.com/prod", "IMGCTL_SPA_PROD": "prod-01"}
    )
    found = environments.get(lookup)
    assert found == Environment("prod", "registry.example.com", "prod", "prod-01")
    assert environments.names() == ["prod"]


def test_multi_word_names_and_unrelated_variables() -> None:
    environments = Environments.from_environment(
        {
            "PATH": "/usr/bin",
            "IMGCTL_REGISTRYX": "not.an.environment",
            "IMGCTL_DEFAULT_SOURCE": "dev",
            "IMGCTL_CREDS_USERNAME_1": "alice",
            "IMGCTL_REGISTRY_DEV_EU": "dev.example.com",
            "IMGCTL_REGISTRY_2": "two.example.com",
        }
    )
    assert environments.names() == ["2", "dev_eu"]
    assert len(environments) == 2
    assert environments.get("DEV_EU") == Environment("dev_eu", "dev.example.com")
    assert environments.get("devx") is None


def test_spa_only_and_registry_only_environments() -> None:
    environments = Environments.from_environment(
        {
            "IMGCTL_SPA_WEB": " web-01 ",
            "IMGCTL_REGISTRY_API": "api.example.com/svc",
            "IMGCTL_REGISTRY_BOTH": "both.example.com",
            "IMGCTL_SPA_BOTH": "both-01",
        }
    )
    assert list(environments) == [
        Environment("api", "api.example.com", "svc", None),
        Environment("both", "both.example.com", "", "both-01"),
        Environment("web", None, "", "web-01"),
    ]
    web = environments.get("web")
    assert web is not None
    assert web.describe() == ""


def test_no_environments() -> None:
    environments = Environments.from_environment({"HOME": "/root"})
    assert len(environments) == 0
    assert environments.names() == []
    assert environments.get("prod") is None


# ---------------------------------------------------------------- policy file

ENVIRONMENTS = Environments.from_environment(
    {
        "IMGCTL_REGISTRY_DEV": "dev.example.com/team",
        "IMGCTL_REGISTRY_INT": "localhost:5000",
        "IMGCTL_REGISTRY_PROD": "registry.example.com:5000/prod/apps",
        "IMGCTL_REGISTRY_HUB": "docker.io",
        "IMGCTL_SPA_DEV": "dev-01",
        "IMGCTL_SPA_PROD": "prod-01",
        "IMGCTL_SPA_WEB": "web-01",
    }
)
CONFIGURED = ("dev", "hub", "int", "prod", "web")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_load_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n"
        "  PROD: [ops@example.com]\n"
        "  int: [engineering@example.com, ops@example.com]\n",
    )
    policy = load_policy(path, ENVIRONMENTS)
    assert policy.path == str(path)
    assert dict(policy.destinations) == {
        "prod": ("ops@example.com",),
        "int": ("engineering@example.com", "ops@example.com"),
    }
    assert policy.groups_for("Prod") == ("ops@example.com",)
    assert policy.groups_for("dev") == ()


@pytest.mark.parametrize("text", ["destinations: {}\n", "destinations:\n"])
def test_load_policy_without_rules(tmp_path: Path, text: str) -> None:
    policy = load_policy(write(tmp_path, text), ENVIRONMENTS)
    assert dict(policy.destinations) == {}
    assert policy.allows([], "prod")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("destinations:\n  qa: [ops]\n", "'qa' is not a configured", id="unknown-env"),
        pytest.param("- prod\n- int\n", "must be a mapping", id="list-document"),
        pytest.param("just words\n", "must be a mapping", id="scalar-document"),
        pytest.param("", "must be a mapping", id="empty-document"),
        pytest.param("destinations: {}\nextra: 1\n", "must be a mapping", id="extra-key"),
        pytest.param("prod: [ops]\n", "must be a mapping", id="missing-destinations-key"),
        pytest.param("destinations: [prod]\n", "destinations must map", id="destinations-list"),
        pytest.param("destinations:\n  prod: []\n", "non-empty list", id="empty-groups"),
        pytest.param("destinations:\n  prod:\n", "non-empty list", id="null-groups"),
        pytest.param("destinations:\n  prod: ops\n", "non-empty list", id="string-groups"),
        pytest.param("destinations:\n  prod: [ops, 7]\n", "non-empty list", id="int-group"),
        pytest.param("destinations:\n  prod: [[ops]]\n", "non-empty list", id="nested-list"),
        pytest.param(
            "destinations: [unclosed\n", "line 2, column 1: invalid YAML", id="invalid-yaml"
        ),
    ],
)
def test_load_policy_errors_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert str(path) in caught.value.message
    assert problem in caught.value.message


def test_load_policy_unknown_environment_lists_configured(tmp_path: Path) -> None:
    path = write(tmp_path, "destinations:\n  qa: [ops]\n")
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert caught.value.hint == f"configured: {', '.join(CONFIGURED)}"


def test_load_policy_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert caught.value.message == f"policy file {path} does not exist"


def test_load_policy_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_policy(tmp_path, ENVIRONMENTS)  # a directory
    assert caught.value.message == f"policy file {tmp_path} is a directory, not a file"


def test_policy_allows_and_groups_for() -> None:
    policy = Policy({"prod": ("ops@example.com", "release@example.com")})
    assert policy.groups_for("PROD") == ("ops@example.com", "release@example.com")
    assert policy.groups_for("int") == ()
    assert policy.allows(["dev@example.com", "release@example.com"], "prod")
    assert policy.allows(iter(["ops@example.com"]), "Prod")
    assert not policy.allows(["dev@example.com"], "prod")
    assert not policy.allows([], "prod")
    assert policy.allows([], "int")  # not listed: open to every allowed caller
    assert Policy().allows([], "prod")


# ---------------------------------------------------------------- Promoter.plan


@pytest.fixture
def promoter() -> Promoter:
    return Promoter(
        ENVIRONMENTS,
        RegistryClient(),
        policy=Policy({"prod": ("ops@example.com", "release@example.com")}),
        default_source="dev",
    )


def invalid_argument(promoter: Promoter, ref: str, source: str, destination: str) -> str:
    """The INVALID_ARGUMENT error's text (message and hint)."""
    with pytest.raises(PromotionError) as caught:
        promoter.plan(ref, source, destination)
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    return str(caught.value)


@pytest.mark.parametrize(
    ("ref", "source", "destination", "from_ref", "to_ref"),
    [
        pytest.param(
            "app:v1",
            "dev",
            "prod",
            "dev.example.com/team/app:v1",
            "registry.example.com:5000/prod/apps/app:v1",
            id="tag",
        ),
        pytest.param(
            f"app@{DIGEST}",
            "dev",
            "prod",
            f"dev.example.com/team/app@{DIGEST}",
            f"registry.example.com:5000/prod/apps/app@{DIGEST}",
            id="digest",
        ),
        pytest.param(
            f"app:v1.2.3@{DIGEST}",
            "dev",
            "prod",
            f"dev.example.com/team/app:v1.2.3@{DIGEST}",
            f"registry.example.com:5000/prod/apps/app:v1.2.3@{DIGEST}",
            id="tag-and-digest",
        ),
        pytest.param(
            "group/sub/app:v1",
            "dev",
            "int",
            "dev.example.com/team/group/sub/app:v1",
            "localhost:5000/group/sub/app:v1",
            id="nested-path-no-destination-prefix",
        ),
        pytest.param(
            "app:v1",
            "dev",
            "hub",
            "dev.example.com/team/app:v1",
            "docker.io/library/app:v1",
            id="docker-hub-library",
        ),
        pytest.param(
            "  app:v1  ",
            " DEV ",
            " Prod ",
            "dev.example.com/team/app:v1",
            "registry.example.com:5000/prod/apps/app:v1",
            id="blanks-and-case",
        ),
        pytest.param(
            "app:v1",
            "",
            "prod",
            "dev.example.com/team/app:v1",
            "registry.example.com:5000/prod/apps/app:v1",
            id="default-source",
        ),
        pytest.param(
            "app:v1",
            "   ",
            "int",
            "dev.example.com/team/app:v1",
            "localhost:5000/app:v1",
            id="blank-source-is-default",
        ),
    ],
)
def test_plan_images(
    promoter: Promoter, ref: str, source: str, destination: str, from_ref: str, to_ref: str
) -> None:
    promotion = promoter.plan(ref, source, destination)
    assert promotion.kind == "image"
    assert promotion.reference == ref.strip()
    assert promotion.source is ENVIRONMENTS.get(source.strip() or "dev")
    assert promotion.destination is ENVIRONMENTS.get(destination)
    assert str(promotion.image_source) == from_ref
    assert str(promotion.image_destination) == to_ref
    assert promotion.spa is None


def test_plan_keeps_tag_and_digest_on_both_sides(promoter: Promoter) -> None:
    promotion = promoter.plan(f"app:v1@{DIGEST}", "dev", "prod")
    assert promotion.image_source is not None
    assert promotion.image_destination is not None
    for reference in (promotion.image_source, promotion.image_destination):
        assert reference.tag == "v1"
        assert reference.digest == Digest.parse(DIGEST)
    assert promotion.image_source.repository == "team/app"
    assert promotion.image_destination.repository == "prod/apps/app"


def test_plan_spa(promoter: Promoter) -> None:
    promotion = promoter.plan("spa:site:1.0.3", "", "PROD")
    assert promotion.kind == "spa"
    assert promotion.reference == "spa:site:1.0.3"
    assert promotion.spa == SpaRef("site", "1.0.3")
    assert (promotion.source.name, promotion.destination.name) == ("dev", "prod")
    assert promotion.image_source is None
    assert promotion.image_destination is None


@pytest.mark.parametrize(
    ("ref", "source", "destination", "expected"),
    [
        pytest.param("", "dev", "prod", "ref is required", id="empty-ref"),
        pytest.param("   ", "dev", "prod", "ref is required", id="blank-ref"),
        pytest.param(
            "ghcr.io/x/y:v1", "dev", "prod", "names a registry (ghcr.io)", id="registry-host"
        ),
        pytest.param(
            "localhost:5000/x:v1", "dev", "prod", "names a registry (localhost:5000)", id="port"
        ),
        pytest.param(
            "localhost/x:v1", "dev", "prod", "names a registry (localhost)", id="localhost"
        ),
        pytest.param("app", "dev", "prod", "has no tag or digest", id="no-tag"),
        pytest.param("group/app", "dev", "prod", "has no tag or digest", id="nested-no-tag"),
        pytest.param("app@sha256:abc", "dev", "prod", "invalid digest", id="short-digest"),
        pytest.param("app@md5:" + "a" * 32, "dev", "prod", "unsupported algorithm", id="md5"),
        pytest.param("app:v1@", "dev", "prod", "invalid digest", id="empty-digest"),
        pytest.param("App:v1", "dev", "prod", "must be lowercase", id="uppercase-repository"),
        pytest.param("Team/app:v1", "dev", "prod", "must be lowercase", id="uppercase-path"),
        pytest.param("app:-v1", "dev", "prod", "tag '-v1' is invalid", id="bad-tag"),
        pytest.param("a//b:v1", "dev", "prod", "empty path component", id="empty-component"),
        pytest.param("app:v1", "dev", "", "destination is required", id="no-destination"),
        pytest.param("app:v1", "dev", "  ", "destination is required", id="blank-destination"),
        pytest.param("app:v1", "dev", "dev", "both 'dev'", id="same"),
        pytest.param("app:v1", "DEV", "dev", "both 'dev'", id="same-other-case"),
        pytest.param("app:v1", "", "Dev", "both 'dev'", id="same-as-default-source"),
        pytest.param("spa:site:1", "dev", "dev", "both 'dev'", id="same-spa"),
    ],
)
def test_plan_invalid_arguments(
    promoter: Promoter, ref: str, source: str, destination: str, expected: str
) -> None:
    assert expected in invalid_argument(promoter, ref, source, destination)


def test_plan_ref_error_quotes_the_ref(promoter: Promoter) -> None:
    text = invalid_argument(promoter, "ghcr.io/x/y:v1", "dev", "prod")
    assert text.startswith("ref 'ghcr.io/x/y:v1' names a registry")


@pytest.mark.parametrize(
    ("source", "destination", "field", "name"),
    [
        pytest.param("qa", "prod", "source", "qa", id="source"),
        pytest.param("dev", "Staging", "destination", "Staging", id="destination"),
    ],
)
def test_plan_unknown_environment(
    promoter: Promoter, source: str, destination: str, field: str, name: str
) -> None:
    with pytest.raises(PromotionError) as caught:
        promoter.plan("app:v1", source, destination)
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    assert caught.value.message == f"unknown {field} environment {name!r}"
    assert caught.value.hint == f"configured environments: {', '.join(CONFIGURED)}"


def test_plan_without_default_source_needs_a_source() -> None:
    promoter = Promoter(ENVIRONMENTS, RegistryClient())
    with pytest.raises(PromotionError) as caught:
        promoter.plan("app:v1", "", "prod")
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    assert "source is required" in caught.value.message
    assert caught.value.hint == "pass --source"


def test_plan_with_no_environments_says_none() -> None:
    promoter = Promoter(Environments([]), RegistryClient())
    with pytest.raises(PromotionError) as caught:
        promoter.plan("app:v1", "dev", "prod")
    assert caught.value.hint == "configured environments: none"


@pytest.mark.parametrize(
    ("source", "destination", "role", "name"),
    [
        pytest.param("dev", "int", "destination", "int", id="destination-has-none"),
        pytest.param("int", "prod", "source", "int", id="source-has-none"),
        pytest.param("hub", "web", "source", "hub", id="registry-only-source"),
    ],
)
def test_plan_spa_needs_suffixes(
    promoter: Promoter, source: str, destination: str, role: str, name: str
) -> None:
    with pytest.raises(PromotionError) as caught:
        promoter.plan("spa:site:1.0", source, destination)
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    assert caught.value.message == f"{role} environment {name!r} has no SPA bucket suffix"
    assert caught.value.hint == f"set IMGCTL_SPA_{name.upper()} on the server"


@pytest.mark.parametrize(
    ("source", "destination", "role"),
    [
        pytest.param("dev", "web", "destination", id="spa-only-destination"),
        pytest.param("web", "prod", "source", id="spa-only-source"),
    ],
)
def test_plan_image_needs_registries(
    promoter: Promoter, source: str, destination: str, role: str
) -> None:
    with pytest.raises(PromotionError) as caught:
        promoter.plan("app:v1", source, destination)
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    assert caught.value.message == f"{role} environment 'web' has no registry"
    assert caught.value.hint == "set IMGCTL_REGISTRY_WEB on the server"


def test_plan_rejects_an_empty_tag(promoter: Promoter) -> None:
    assert "app:" in invalid_argument(promoter, "app:", "dev", "prod")


def test_plan_rejects_an_invalid_spa_ref(promoter: Promoter) -> None:
    with pytest.raises(ImgctlError, match="invalid SPA reference 'spa:Bad:1'"):
        promoter.plan("spa:Bad:1", "dev", "prod")


def test_plan_invalid_spa_ref_is_invalid_argument(promoter: Promoter) -> None:
    assert "spa:Bad:1" in invalid_argument(promoter, "spa:Bad:1", "dev", "prod")


# ---------------------------------------------------------------- allowed / destinations_for


def test_allowed_denies_with_the_needed_groups(promoter: Promoter) -> None:
    promotion = promoter.plan("app:v1", "dev", "prod")
    with pytest.raises(PromotionError) as caught:
        promoter.allowed(["dev@example.com"], promotion)
    assert status_name(caught.value) == "PERMISSION_DENIED"
    assert caught.value.message == (
        "promoting to 'prod' needs one of the groups ops@example.com, release@example.com"
    )
    assert caught.value.hint is not None


@pytest.mark.parametrize(
    ("groups", "destination"),
    [
        pytest.param(["dev@example.com", "release@example.com"], "prod", id="one-group-matches"),
        pytest.param(iter(["ops@example.com"]), "prod", id="iterator"),
        pytest.param([], "int", id="unlisted-destination"),
    ],
)
def test_allowed_passes(promoter: Promoter, groups: list[str], destination: str) -> None:
    promotion = promoter.plan("app:v1", "dev", destination)
    groups = list(groups)
    assert promoter.policy.allows(groups, destination)
    promoter.allowed(groups, promotion)  # no PromotionError
    # The same call refuses a caller without those groups, where the policy lists any.
    if promoter.policy.groups_for(destination):
        with pytest.raises(PromotionError):
            promoter.allowed(["nobody@example.com"], promotion)


def test_allowed_applies_to_spa_too(promoter: Promoter) -> None:
    promotion = promoter.plan("spa:site:1.0", "dev", "prod")
    with pytest.raises(PromotionError) as caught:
        promoter.allowed([], promotion)
    assert status_name(caught.value) == "PERMISSION_DENIED"


def test_destinations_for(promoter: Promoter) -> None:
    assert promoter.destinations_for([]) == ["dev", "hub", "int", "web"]
    assert promoter.destinations_for(["release@example.com"]) == list(CONFIGURED)
    assert promoter.destinations_for(iter(["other@example.com"])) == ["dev", "hub", "int", "web"]
    open_promoter = Promoter(ENVIRONMENTS, RegistryClient())
    assert open_promoter.destinations_for([]) == list(CONFIGURED)
