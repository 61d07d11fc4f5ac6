"""Environment credential entries: imgpkg's matching and precedence, and imgctl's.

Upstream rows, named where they are used:

* carvel-dev/imgpkg ``pkg/imgpkg/registry/keychain_test.go`` ``TestAuthProvidedViaEnvVars`` at
  commit 96a99c0004b01f6403e49491044b52bf4397fbd9 (its last version; HEAD 240e8789 has no unit
  test of the env keychain, whose code, ``pkg/imgpkg/registry/auth/env_keychain.go``, is
  unchanged in behaviour since): ``testCasesWithMatchingHostnames``,
  ``testCasesWithNonMatchingHostnames``, the invalid hostnames, ``testCasesSpecifyingOrder``, the
  token kinds, "Only IMGPKG_REGISTRY env variables are used", "Do not error if AZURE_CR_CONFIG env
  var is set". The rest of that file is in ``tests/unit/test_keychain_imgpkg.py``.
* imgpkg's documentation, carvel-dev/carvel ``site/content/imgpkg/docs/v0.41.x/auth.md`` at commit
  9e49dcdfcceb1c3244431eb3df4c7f5881274ce7: the HOSTNAME examples, the glob example and the
  "HOSTNAME not using globbing wins" note.

Rows marked "imgctl" are imgctl's own; where imgctl answers differently from imgpkg, the row says
so and docs/credentials.md ("Where imgctl differs from imgpkg") gives the reason.
"""

from __future__ import annotations

import pytest

from imgctl.authn import Credential, EnvKeychain, MultiKeychain, StaticKeychain
from imgctl.authn._envcreds import parse_entries
from imgctl.errors import CredentialError

USER = Credential("user", "pass")


def env_for(hostname: str, prefix: str = "IMGPKG_REGISTRY_") -> dict[str, str]:
    return {f"{prefix}USERNAME": "user", f"{prefix}PASSWORD": "pass", f"{prefix}HOSTNAME": hostname}


def split(image: str) -> tuple[str, str]:
    registry, _, repository = image.partition("/")
    return registry, repository


async def resolve(environ: dict[str, str], image: str) -> Credential:
    return await EnvKeychain(environ).resolve(*split(image))


# keychain_test.go testCasesWithMatchingHostnames (the first ten), then the documentation's
# examples: each HOSTNAME must give the credentials for the image.
MATCHING = [
    ("localhost:9999/imgpkg_test", "localhost:9999"),
    ("localhost:9999/imgpkg_test", "http://localhost:9999"),
    ("localhost:9999/imgpkg_test", "https://localhost:9999"),
    ("localhost:9999/imgpkg_test", "localhost:9999/v1/"),
    ("localhost:9999/imgpkg_test", "localhost:9999/v2/"),
    ("localhost:9999/imgpkg_test", "*:9999/v2/"),
    ("localhost:9999/imgpkg_test", "local*:9999/v2/"),
    ("subdomain.localhost:9999/imgpkg_test", "*.localhost:9999/v2/"),
    ("subdomain1.subdomain2.localhost:9999/imgpkg_test", "*.*.localhost:9999/v2/"),
    ("localhost:9999/imgpkg_test", "localhost:9999/imgpkg_test"),
    # auth.md: "e.g. gcr.io, docker.io, https://gcr.io, docker.io/v2/", "*.*.docker.io will match
    # bar.foo.docker.io", "the fully qualified repository. for e.g. gcr.io/repo/image".
    ("gcr.io/repo/image", "gcr.io"),
    ("gcr.io/repo/image", "https://gcr.io"),
    ("bar.foo.docker.io/image", "*.*.docker.io"),
    ("gcr.io/repo/image", "gcr.io/repo/image"),
    ("hostname.for.registry.1/app", "hostname.for.registry.1"),
    # imgctl differs: imgpkg matches docker.io and docker.io/v2/ against the image's
    # index.docker.io name, so neither documented example covers Docker Hub images there.
    ("docker.io/library/alpine", "docker.io"),
    ("docker.io/library/alpine", "docker.io/v2/"),
    # imgctl: Docker Hub is one host under all its names, in the entry and in the image.
    ("docker.io/library/alpine", "index.docker.io"),
    ("docker.io/library/alpine", "https://index.docker.io/v1/"),
    ("index.docker.io/library/alpine", "docker.io"),
    ("registry-1.docker.io/library/alpine", "docker.io/library"),
    ("docker.io/library/alpine", "*.docker.io"),
    # imgctl: whole path segments, case-insensitive hosts, glob classes.
    ("quay.io/coreos/etcd", "quay.io/coreos"),
    ("quay.io/coreos/etcd", "quay.io/coreos/etcd"),
    ("Quay.IO/coreos/etcd", "QUAY.io"),
    ("reg-b.example.com/app", "reg-[ab].example.com"),
    ("reg-c.example.com/app", "reg-[^ab].example.com"),
    ("[::1]:5000/app", "[::1]:5000"),
]

NOT_MATCHING = [
    # keychain_test.go testCasesWithNonMatchingHostnames.
    ("subdomain1.subdomain2.localhost:9999/imgpkg_test", "*.localhost:9999"),
    ("subdomain1.localhost:9999/imgpkg_test", "localhost:9999"),
    ("subdomain1.localhost:9999/imgpkg_test", "*:9999"),
    # auth.md: one label per *, so *.*.docker.io is not foo.docker.io; imgctl's further rows.
    ("foo.docker.io/image", "*.*.docker.io"),
    ("localhost:9999/imgpkg_test", "localhost"),
    ("localhost/imgpkg_test", "localhost:9999"),
    ("localhost:9999/imgpkg_test", "localhost:9998"),
    ("localhost:9999/imgpkg_test", "localhost:9999/other"),
    # imgctl differs from imgpkg: a path matches whole segments only.
    ("quay.io/coreos/etcd", "quay.io/core"),
    ("quay.io/coreos", "quay.io/coreos/etcd"),
    ("reg-c.example.com/app", "reg-[ab].example.com"),
    ("example.com/app", "*.example.com"),
    ("gcr.io/app", "docker.io"),
]


@pytest.mark.parametrize(("image", "hostname"), MATCHING)
@pytest.mark.parametrize("prefix", ["IMGPKG_REGISTRY_", "IMGCTL_CREDS_"])
async def test_hostname_matches(image: str, hostname: str, prefix: str) -> None:
    assert await resolve(env_for(hostname, prefix), image) == USER


@pytest.mark.parametrize(("image", "hostname"), NOT_MATCHING)
async def test_hostname_does_not_match(image: str, hostname: str) -> None:
    keychain = EnvKeychain(env_for(hostname))
    answer = await keychain.explain(*split(image))
    assert answer.credential.anonymous
    assert "IMGPKG_REGISTRY_HOSTNAME" in answer.detail  # says which entry and why not


# keychain_test.go's invalid hostnames (the first three; imgpkg fails at Resolve, imgctl when
# the keychain is built), then imgctl's: HOSTNAMEs imgpkg accepts but that can never match.
@pytest.mark.parametrize(
    "hostname",
    [
        "http://[::1]:namedport",
        "http://[%10::1]",
        "http://%41:8080/",
        "",
        "ftp://registry.example.com",
        "user:pw@registry.example.com",
        "registry.example.com:99999",
        "registry.example.com/team/*",
        "registry.example.com?x=1",
        "reg[.example.com",
        "under_score.example.com",
    ],
)
def test_malformed_hostname_is_an_error_naming_the_variable(hostname: str) -> None:
    with pytest.raises(CredentialError) as info:
        EnvKeychain(env_for(hostname, "IMGCTL_CREDS_") | {"IMGCTL_CREDS_PASSWORD": "s3cr3t-pw"})
    assert "IMGCTL_CREDS_HOSTNAME" in str(info.value)
    assert "s3cr3t-pw" not in str(info.value)


# keychain_test.go testCasesSpecifyingOrder, against localhost:9999/imgpkg_test/imagename: _1
# must win. (imgpkg gets there by sorting HOSTNAMEs in reverse string order; imgctl by
# specificity, which agrees on every upstream row.)
ORDER = [
    ("localhost:9999", "localhost:9999/imgpkg_test"),
    ("localhost:9999/imgpkg_test", "localhost:9999/imgpkg_test/imagename"),
    ("*:9999/imgpkg_test/imagename", "localhost:9999"),
    ("localhost:9999/v1/", "localhost:9999/imgpkg_test"),
    # imgctl: among globs, the longer path, then the more literal host.
    ("*:9999", "*:9999/imgpkg_test"),
    ("*:*9", "local*:9999"),
]


@pytest.mark.parametrize(("loser", "winner"), ORDER)
@pytest.mark.parametrize("swap", [False, True])
async def test_more_specific_hostname_wins(loser: str, winner: str, swap: bool) -> None:
    if loser == "*:*9":
        with pytest.raises(CredentialError):
            EnvKeychain(env_for(loser))  # ports are never globs
        loser = "l*:9999"
    # Suffix order must not decide: the same outcome with the suffixes swapped.
    lose, win = ("1", "0") if swap else ("0", "1")
    environ = {
        f"IMGPKG_REGISTRY_USERNAME_{lose}": "user-not-chosen",
        f"IMGPKG_REGISTRY_PASSWORD_{lose}": "pass-not-chosen",
        f"IMGPKG_REGISTRY_HOSTNAME_{lose}": loser,
        f"IMGPKG_REGISTRY_USERNAME_{win}": "user",
        f"IMGPKG_REGISTRY_PASSWORD_{win}": "pass",
        f"IMGPKG_REGISTRY_HOSTNAME_{win}": winner,
    }
    assert await resolve(environ, "localhost:9999/imgpkg_test/imagename") == USER


async def test_exact_host_beats_glob_documented_case() -> None:
    # auth.md: IMGPKG_REGISTRY_HOSTNAME_0=*.docker.io vs IMGPKG_REGISTRY_HOSTNAME_1=foo.docker.io
    # for foo.docker.io/image uses _1.
    environ = {
        "IMGPKG_REGISTRY_USERNAME_0": "glob",
        "IMGPKG_REGISTRY_PASSWORD_0": "x",
        "IMGPKG_REGISTRY_HOSTNAME_0": "*.docker.io",
        "IMGPKG_REGISTRY_USERNAME_1": "exact",
        "IMGPKG_REGISTRY_PASSWORD_1": "y",
        "IMGPKG_REGISTRY_HOSTNAME_1": "foo.docker.io",
    }
    assert (await resolve(environ, "foo.docker.io/image")).username == "exact"
    assert (await resolve(environ, "bar.docker.io/image")).username == "glob"


async def test_several_registries_by_suffix_and_token_kinds() -> None:
    # keychain_test.go: "single registry access token", "identity token", "multiple registry
    # credentials", "Only IMGPKG_REGISTRY env variables are used"; imgctl's prefix beside it.
    environ = {
        "IMGCTL_CREDS_HOSTNAME_0": "localhost:9999",
        "IMGCTL_CREDS_USERNAME_0": "user0",
        "IMGCTL_CREDS_PASSWORD_0": "pass0",
        "IMGCTL_CREDS_HOSTNAME_1": "localhost:1111",
        "IMGCTL_CREDS_IDENTITY_TOKEN_1": "ID_TOKEN",
        "IMGCTL_CREDS_HOSTNAME_abc": "localhost:2222",
        "IMGCTL_CREDS_REGISTRY_TOKEN_abc": "REG_TOKEN",
        "IMGPKG_REGISTRY_HOSTNAME": "localhost:3333",
        "IMGPKG_REGISTRY_REGISTRY_TOKEN": "OTHER",
        "SOMETHING_REGISTRY_USERNAME": "wrong-user",
        "SOMETHING_REGISTRY_HOSTNAME": "localhost:9999",
    }
    assert await resolve(environ, "localhost:9999/a") == Credential("user0", "pass0")
    assert await resolve(environ, "localhost:1111/a") == Credential(identity_token="ID_TOKEN")
    assert await resolve(environ, "localhost:2222/a") == Credential(registry_token="REG_TOKEN")
    assert await resolve(environ, "localhost:3333/a") == Credential(registry_token="OTHER")
    assert (await resolve(environ, "localhost:4444/a")).anonymous


async def test_imgctl_entries_win_over_imgpkg_ones_of_equal_specificity() -> None:
    environ = env_for("localhost:9999", "IMGPKG_REGISTRY_") | {
        "IMGCTL_CREDS_HOSTNAME": "localhost:9999",
        "IMGCTL_CREDS_USERNAME": "ours",
        "IMGCTL_CREDS_PASSWORD": "p",
    }
    assert (await resolve(environ, "localhost:9999/x")).username == "ours"


def test_azure_config_variable_is_not_an_entry() -> None:
    # keychain_test.go: "Do not error if AZURE_CR_CONFIG env var is set".
    assert parse_entries({"IMGPKG_REGISTRY_AZURE_CR_CONFIG": "/some/path"}) == []


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"IMGCTL_CREDS_PASWORD_0": "x"}, "IMGCTL_CREDS_PASWORD_0"),
        ({"IMGCTL_CREDS_USERNAME_a-b": "x"}, "IMGCTL_CREDS_USERNAME_a-b"),
        ({"IMGPKG_REGISTRY_TOKEN": "x"}, "IMGPKG_REGISTRY_TOKEN"),
        (
            {"IMGCTL_CREDS_USERNAME_0": "u", "IMGCTL_CREDS_PASSWORD_0": "p"},
            "IMGCTL_CREDS_HOSTNAME_0",
        ),
        (
            {"IMGCTL_CREDS_HOSTNAME_0": "r.example.com", "IMGCTL_CREDS_USERNAME_0": "u"},
            "IMGCTL_CREDS_PASSWORD_0",
        ),
        ({"IMGCTL_CREDS_HOSTNAME_0": "r.example.com"}, "IMGCTL_CREDS_HOSTNAME_0"),
    ],
)
def test_bad_entries_are_errors_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(CredentialError) as info:
        EnvKeychain(environ)
    assert named in str(info.value)


async def test_explain_names_the_entry_but_never_the_secret() -> None:
    environ = {
        "IMGCTL_CREDS_HOSTNAME_prod": "*.prod.example.com/team",
        "IMGCTL_CREDS_USERNAME_prod": "robot",
        "IMGCTL_CREDS_PASSWORD_prod": "hunter2-secret",
    }
    keychain = EnvKeychain(environ)
    hit = await keychain.explain("reg.prod.example.com", "team/app")
    assert hit.found
    assert hit.source == "env"
    assert "IMGCTL_CREDS_HOSTNAME_prod" in hit.detail
    miss = await keychain.explain("reg.prod.example.com", "teamwork/app")
    assert not miss.found
    assert "not a prefix" in miss.detail
    for text in (hit.detail, miss.detail, repr(hit), repr(hit.credential)):
        assert "hunter2-secret" not in text


async def test_env_entries_come_before_later_sources() -> None:
    chain = MultiKeychain(
        EnvKeychain(env_for("localhost:9999")),
        StaticKeychain(Credential("flag", "f"), name="flags"),
    )
    assert await chain.resolve("localhost:9999", "x") == USER
    assert (await chain.resolve("localhost:1111", "x")).username == "flag"
    answers = await chain.explain_all("localhost:1111", "x")
    assert [a.source for a in answers] == ["env", "flags"]
