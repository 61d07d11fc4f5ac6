"""Every YAML file imgctl reads means one thing or is refused, with the lines of both places.

Each file kind (policy, kpromo manifest, thin manifest tree, images list, watches, tokens,
issuer config) starts from a valid file; the tests then add a second spelling of one of its
keys at the top, nested and deeper: the same key, other case, surrounding or invisible
spaces, another Unicode form, the key merged in with ``<<``, an alias of the key, and the whole
file as JSON. Each must be refused naming the file and both places. Then strings where
booleans and numbers belong, and unknown keys. Pure: files only, no network.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from imgctl._internal import strict_yaml
from imgctl.catalog.tokens import TokenFile
from imgctl.errors import UsageError
from imgctl.identity.issuer import load_issuer_config
from imgctl.promotion.environments import Environments, load_policy
from imgctl.promotion.manifests import load_images, load_manifest, load_thin_manifests
from imgctl.remote.config import load_registry_config
from imgctl.scan.watches import load_watches

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSJC8qeQCYs/yrxpcc57KyF03Iaclnu+J+rQax/u/Ke a"
A = "sha256:" + "a" * 64
ENVIRONMENTS = Environments.from_environment(
    {
        "IMGCTL_REGISTRY_DEV": "dev.example.com",
        "IMGCTL_REGISTRY_INT": "int.example.com",
        "IMGCTL_REGISTRY_PROD": "prod.example.com",
    }
)

POLICY = """\
destinations:
  prod: [ops@example.com]
  int: [engineering@example.com, ops@example.com]
"""
MANIFEST = f"""\
registries:
- name: staging.example.com
  src: true
- name: prod.example.com
images:
- name: app
  dmap:
    "{A}": ["1.0"]
"""
THIN_MANIFEST = """\
registries:
- name: staging.example.com
  src: true
- name: prod.example.com
"""
IMAGES = f"""\
- name: app
  dmap:
    "{A}": ["1.0"]
"""
WATCHES = """\
concurrency: 2
watches:
- name: app
  image: registry.example.com/team/app
  interval: 1m
  suspend: false
  policy:
    semver:
      range: ">=1.0.0"
"""
TOKENS = """\
tokens:
- name: ci
  token: tok-ci-Qm3L
  description: CI
  is_disabled: false
- name: old
  token: tok-old-7yH
  is_disabled: true
"""
ISSUER = f"""\
issuer: https://idp.example.com
staticClients:
- id: imgctl
  secret: s3cret
users:
  alice:
    keys: ["{KEY}"]
    email: alice@example.com
    groups: [engineering@example.com]
  bob:
    keys: ["{KEY}"]
    groups: [ops@example.com]
"""


@dataclass(frozen=True)
class Kind:
    """One kind of file: a valid text, where it goes, and how imgctl loads it."""

    name: str
    valid: str
    write: Callable[[Path, str], Path]  # writes the text; returns the path the error names
    load: Callable[[Path], object]  # raises UsageError when the file is refused
    targets: tuple[tuple[tuple[str | int, ...], str], ...]  # (path to a mapping, a key in it)


def _file(name: str) -> Callable[[Path, str], Path]:
    def write(root: Path, text: str) -> Path:
        path = root / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def _thin(which: str) -> Callable[[Path, str], Path]:
    def write(root: Path, text: str) -> Path:
        manifest = root / "manifests" / "app" / "promoter-manifest.yaml"
        images = root / "images" / "app" / "images.yaml"
        for path in (manifest, images):
            path.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(text if which == "manifest" else THIN_MANIFEST, encoding="utf-8")
        images.write_text(text if which == "images" else IMAGES, encoding="utf-8")
        return manifest if which == "manifest" else images

    return write


def _load_thin(path: Path) -> object:
    return load_thin_manifests(path.parents[2])


KINDS = [
    Kind(
        "policy",
        POLICY,
        _file("policy.yaml"),
        lambda path: load_policy(path, ENVIRONMENTS),
        (((), "destinations"), (("destinations",), "prod"), (("destinations",), "int")),
    ),
    Kind(
        "manifest",
        MANIFEST,
        _file("manifest.yaml"),
        load_manifest,
        ((((), "registries")), (("registries", 0), "src"), (("images", 0, "dmap"), A)),
    ),
    Kind(
        "thin-manifest",
        THIN_MANIFEST,
        _thin("manifest"),
        _load_thin,
        (((), "registries"), (("registries", 1), "name")),
    ),
    Kind(
        "thin-images",
        IMAGES,
        _thin("images"),
        _load_thin,
        (((0,), "name"), ((0, "dmap"), A)),
    ),
    Kind(
        "images",
        IMAGES,
        _file("images.yaml"),
        load_images,
        (((0,), "dmap"), ((0, "dmap"), A)),
    ),
    Kind(
        "watches",
        WATCHES,
        _file("watches.yaml"),
        lambda path: load_watches(path, environ={}),
        (
            ((), "watches"),
            ((), "concurrency"),
            (("watches", 0), "suspend"),
            (("watches", 0, "policy", "semver"), "range"),
        ),
    ),
    Kind(
        "tokens",
        TOKENS,
        _file("tokens.yaml"),
        TokenFile,
        (((), "tokens"), (("tokens", 1), "is_disabled"), (("tokens", 0), "token")),
    ),
    Kind(
        "issuer",
        ISSUER,
        _file("idp.yaml"),
        load_issuer_config,
        (
            ((), "users"),
            (("users",), "alice"),
            (("users", "bob"), "groups"),
            (("staticClients", 0), "id"),
        ),
    ),
]
KIND_IDS = [kind.name for kind in KINDS]


@pytest.fixture(params=["python", "libyaml"] if yaml.__with_libyaml__ else ["python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both YAML parsers imgctl may use: libyaml when PyYAML has it, pure Python otherwise."""
    if request.param == "python":
        monkeypatch.setattr(strict_yaml, "LOADER", strict_yaml.PythonLoader)
    return str(request.param)


def refusal(kind: Kind, root: Path, text: str) -> tuple[Path, str]:
    """The file written and the message of the UsageError loading it must raise."""
    path = kind.write(root, text)
    with pytest.raises(UsageError) as caught:
        kind.load(path)
    message = str(caught.value)
    assert "Traceback" not in message
    return path, message


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_the_valid_file_loads(kind: Kind, tmp_path: Path, yaml_loader: str) -> None:
    kind.load(kind.write(tmp_path, kind.valid))
    # The same file as JSON (YAML's flow style) loads the same.
    kind.load(kind.write(tmp_path, _to_json(yaml.compose(kind.valid))))


# ------------------------------------------------------------------- second spellings of a key

STR = "tag:yaml.org,2002:str"


def _mapping_at(root: yaml.Node, path: tuple[str | int, ...]) -> yaml.MappingNode:
    node = root
    for step in path:
        if isinstance(step, int):
            assert isinstance(node, yaml.SequenceNode)
            node = node.value[step]
        else:
            assert isinstance(node, yaml.MappingNode)
            node = next(v for k, v in node.value if k.value == step)
    assert isinstance(node, yaml.MappingNode)
    return node


def _to_json(node: yaml.Node) -> str:
    """The node as JSON text, keeping repeated keys (json.dumps would merge them)."""
    if isinstance(node, yaml.MappingNode):
        return "{" + ", ".join(f"{_to_json(k)}: {_to_json(v)}" for k, v in node.value) + "}"
    if isinstance(node, yaml.SequenceNode):
        return "[" + ", ".join(_to_json(v) for v in node.value) + "]"
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == STR:
        return json.dumps(node.value)
    return json.dumps(yaml.SafeLoader("").construct_object(node))


# name -> the second spelling of ``key``
SPELLINGS: dict[str, Callable[[str], str]] = {
    "same": lambda key: key,
    "upper": str.upper,
    "title": lambda key: key[:1].upper() + key[1:],
    "trailing-space": lambda key: key + " ",
    "leading-space": lambda key: " " + key,
    "tab": lambda key: key + "\t",
    "zero-width-space": lambda key: key + "\u200b",
    "no-break-space": lambda key: "\u00a0" + key,
    "fullwidth": lambda key: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in key),
}
HOW = [*SPELLINGS, "merge", "alias-key", "json"]


def _second_spelling(kind: Kind, target: int, how: str) -> tuple[str, int, int, int, int]:
    """The valid text with a second spelling of one key; and (line, column) of both, 1-based."""
    path, key = kind.targets[target]
    root = yaml.compose(kind.valid)
    mapping = _mapping_at(root, path)
    index, (original, value) = next(
        (i, pair) for i, pair in enumerate(mapping.value) if pair[0].value == key
    )
    if how in SPELLINGS:
        second = yaml.ScalarNode(STR, SPELLINGS[how](key))
        mapping.value.append((second, copy.deepcopy(value)))
    elif how == "merge":
        inner = yaml.MappingNode("tag:yaml.org,2002:map", [(yaml.ScalarNode(STR, key), value)])
        mapping.value.append((yaml.ScalarNode("tag:yaml.org,2002:merge", "<<"), inner))
    elif how == "alias-key":
        mapping.value.append((original, copy.deepcopy(value)))
    else:
        assert how == "json"
        mapping.value.append((yaml.ScalarNode(STR, key), copy.deepcopy(value)))
    text = _to_json(root) if how == "json" else yaml.serialize(root)
    # Where the two keys are in the text written: compose it again without any checks.
    again = _mapping_at(yaml.compose(text), path)
    first = again.value[index][0].start_mark
    if how == "merge":
        last = again.value[-1][1].value[0][0].start_mark
    elif how == "alias-key":
        line = next(n for n, line in enumerate(text.splitlines()) if "*id001" in line)
        last = yaml.Mark("", 0, line, text.splitlines()[line].index("*id001"), None, None)
    else:
        last = again.value[-1][0].start_mark
    return text, first.line + 1, first.column + 1, last.line + 1, last.column + 1


CASES = [
    pytest.param(kind, target, how, id=f"{kind.name}-{'.'.join(map(str, path)) or 'top'}-{how}")
    for kind in KINDS
    for target, (path, _) in enumerate(kind.targets)
    for how in HOW
]


@pytest.mark.parametrize(("kind", "target", "how"), CASES)
def test_a_key_written_twice_is_refused_with_both_lines(
    kind: Kind, target: int, how: str, tmp_path: Path, yaml_loader: str
) -> None:
    text, line1, column1, line2, column2 = _second_spelling(kind, target, how)
    path, message = refusal(kind, tmp_path, text)
    assert str(path) in message
    assert f"line {line2}, column {column2}: " in message
    assert f"(first at line {line1}, column {column1}" in message
    if kind.name == "tokens":
        for secret in ("tok-ci-Qm3L", "tok-old-7yH"):
            assert secret not in message


# Merges and aliases as people write them, each hiding a second value of one key.
MERGED: list[tuple[str, str, str]] = [
    (
        "policy",
        "defaults: &open\n  prod: [everyone@example.com]\n"
        "destinations:\n  <<: *open\n  prod: [ops@example.com]\n",
        "line 5, column 3: duplicate key 'prod' (first at line 2, column 3; the first merged in"
        " by '<<' at line 4, column 3)",
    ),
    (
        "policy",
        "destinations:\n  prod: &ops [ops@example.com]\n  <<: {PROD: *ops}\n",
        "line 3, column 8: key 'PROD' is the same as key 'prod'",
    ),
    (
        "watches",
        "watches:\n- &app {name: app, image: registry.example.com/a, interval: 1m, suspend: true}\n"
        "- <<: *app\n  name: app2\n  suspend: false\n",
        "line 4, column 3: duplicate key 'name' (first at line 2, column 9; the first merged in"
        " by '<<' at line 3, column 3)",
    ),
    (
        "tokens",
        "tokens:\n- &ci {name: ci, token: tok-ci-Qm3L, is_disabled: true}\n"
        "- <<: *ci\n  name: ci2\n  is_disabled: false\n",
        "duplicate key (first at line 2, column 8; the first merged in by '<<' at line 3,"
        " column 3)",
    ),
    (
        "issuer",
        ISSUER.replace("  alice:\n", "  alice: &alice\n").replace(
            "  bob:\n", "  bob:\n    <<: *alice\n"
        ),
        "duplicate key 'keys'",
    ),
    (
        "manifest",
        MANIFEST.replace(
            "- name: prod.example.com", "- <<: &dst {name: prod.example.com}\n  <<: *dst"
        ),
        "duplicate key '<<'",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"), MERGED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MERGED)]
)
def test_merges_and_aliases_hiding_a_key_are_refused(
    name: str, text: str, expected: str, tmp_path: Path, yaml_loader: str
) -> None:
    kind = next(k for k in KINDS if k.name == name)
    _, message = refusal(kind, tmp_path, text)
    assert expected in message


def test_merges_and_aliases_that_hide_nothing_are_read(tmp_path: Path, yaml_loader: str) -> None:
    text = "destinations:\n  prod: &ops [ops@example.com]\n  <<: {int: *ops}\n"
    policy = load_policy(_file("policy.yaml")(tmp_path, text), ENVIRONMENTS)
    assert dict(policy.destinations) == {"prod": ("ops@example.com",), "int": ("ops@example.com",)}


# ------------------------------------------------ environment names that normalise to one name


@pytest.mark.parametrize(
    "second", ["PROD", "Prod", "prod ", " prod", "pRoD", "\uff50\uff52\uff4f\uff44", "prod\u200b"]
)
def test_policy_names_one_environment_once(second: str, tmp_path: Path) -> None:
    # The first entry keeps prod to ops; a second spelling must not open it to everyone.
    text = f"destinations:\n  prod: [ops@example.com]\n  {json.dumps(second)}: [all@example.com]\n"
    path = _file("policy.yaml")(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert f"{path}: line 3, column 3: " in str(caught.value)
    assert "(first at line 2, column 3)" in str(caught.value)


@pytest.mark.parametrize("spelling", ["PROD", "Prod", " prod", "prod "])
def test_policy_rule_applies_whatever_the_spelling(spelling: str, tmp_path: Path) -> None:
    # One entry, however it is spelled, is the rule for the environment it names.
    path = _file("policy.yaml")(tmp_path, f"destinations:\n  {json.dumps(spelling)}: [ops]\n")
    policy = load_policy(path, ENVIRONMENTS)
    assert policy.groups_for("prod") == ("ops",)
    assert not policy.allows(["everyone"], "prod")


def test_issuer_users_with_one_username_are_refused(tmp_path: Path) -> None:
    text = ISSUER.replace("  bob:\n", "  bob:\n    username: Alice\n")
    _path, message = refusal(KINDS[-1], tmp_path, text)
    assert "users.bob" in message
    assert "users.alice" in message
    assert "line 11" in message
    assert "line 7" in message


def test_issuer_connector_entries_have_known_keys(tmp_path: Path) -> None:
    text = (
        "staticClients: [{id: imgctl}]\n"
        "connectors:\n- type: ssh\n  id: ssh\n  confg: {}\n"
        f"  config: {{users: {{alice: {{keys: ['{KEY}']}}}}}}\n"
    )
    _, message = refusal(KINDS[-1], tmp_path, text)
    assert "confg" in message
    assert "line 3" in message


def test_issuer_clients_listed_twice_are_refused(tmp_path: Path) -> None:
    text = ISSUER.replace("- id: imgctl\n  secret: s3cret\n", "- id: imgctl\n- id: imgctl\n")
    _, message = refusal(KINDS[-1], tmp_path, text)
    assert "staticClients[1]" in message
    assert "line 4" in message
    assert "line 3" in message


@pytest.mark.parametrize(
    "second",
    ['"Harbor.example.com"', '"HARBOR.EXAMPLE.COM"', '"harbor.example.com "'],
)
def test_client_config_hosts_that_are_one_host_are_refused(second: str, tmp_path: Path) -> None:
    # TOML refuses an exact repeat itself; registry hosts are case-insensitive names.
    text = (
        '[registry.hosts."harbor.example.com"]\nverify_certs = true\n\n'
        f"[registry.hosts.{second}]\nverify_certs = false\n"
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_registry_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 4" in message
    assert "line 1" in message


def test_client_config_docker_hub_aliases_are_one_host(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[registry.hosts."docker.io"]\nverify_certs = true\n'
        '[registry.hosts."index.docker.io"]\nverify_certs = false\n'
    )
    with pytest.raises(UsageError, match="same registry"):
        load_registry_config(path)


# ------------------------------------------------------------ booleans and numbers are typed

STRING_SCALARS: list[tuple[str, str, str, str]] = [
    # (kind, text replaced, replacement, what the message names)
    *(
        ("manifest", "src: true", f"src: {value}", "'src' must be true or false")
        for value in ('"true"', "'True'", '"yes"', "1", '"1"')
    ),
    *(
        ("thin-manifest", "src: true", f"src: {value}", "'src' must be true or false")
        for value in ('"true"', "'on'")
    ),
    *(
        ("watches", "suspend: false", f"suspend: {value}", "suspend: must be true or false")
        for value in ('"false"', "'False'", "0", '"no"')
    ),
    *(
        ("watches", "concurrency: 2", f"concurrency: {value}", "concurrency: must be a whole")
        for value in ('"2"', "2.0", "true")
    ),
    *(
        ("tokens", "is_disabled: true", f"is_disabled: {value}", "is_disabled must be true or")
        for value in ('"true"', "'True'", '"TRUE"', '"yes"', "1", '"1"', "", "~", "[true]")
    ),
    *(
        ("issuer", "issuer: https", f"token_ttl: {value}\nissuer: https", "token_ttl must be")
        for value in ('"3600"', "3600.0", "true")
    ),
    *(
        ("issuer", "  secret: s3cret", f"  public: {value}\n  secret: s3cret", "public must be")
        for value in ('"true"', "'false'", "1")
    ),
    ("policy", "[ops@example.com]", "[true]", "non-empty list of groups"),
    ("policy", "[ops@example.com]", "[1]", "non-empty list of groups"),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    STRING_SCALARS,
    ids=[
        f"{c[0]}-{c[2].split(':')[-1].strip() or 'empty'}-{i}" for i, c in enumerate(STRING_SCALARS)
    ],
)
def test_strings_are_not_booleans_or_numbers(
    name: str, old: str, new: str, expected: str, tmp_path: Path
) -> None:
    kind = next(k for k in KINDS if k.name == name)
    assert old in kind.valid
    path, message = refusal(kind, tmp_path, kind.valid.replace(old, new, 1))
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[registry]\nverify_certs = 'true'\n", "verify_certs must be true or false"),
        ("[registry.hosts.h]\ninsecure = 'false'\n", "insecure must be true or false"),
    ],
)
def test_client_config_strings_are_not_booleans(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=expected):
        load_registry_config(path)


def test_yaml_1_1_booleans_are_booleans(tmp_path: Path) -> None:
    # PyYAML (like kpromo's yaml.v2) reads yes/no/on/off as booleans: a revocation written
    # 'is_disabled: yes' revokes.
    path = _file("tokens.yaml")(tmp_path, TOKENS.replace("is_disabled: true", "is_disabled: yes"))
    tokens = TokenFile(path)
    assert tokens.check("tok-old-7yH") is None
    assert tokens.check("tok-ci-Qm3L") == "ci"


# -------------------------------------------------------------------------- unknown keys

UNKNOWN: list[tuple[str, str, str, str]] = [
    ("tokens", "  is_disabled: true", "  is_disable: true", "is_disable"),
    ("tokens", "  is_disabled: true", "  is_disabled: true\n  disabled: true", "unknown key"),
    ("tokens", "tokens:", "version: 1\ntokens:", "unknown key"),
    ("issuer", "staticClients:", "staticClient: []\nstaticClients:", "staticClient"),
    ("issuer", "  secret: s3cret", "  secret: s3cret\n  trustedPeer: [x]", "trustedPeer"),
    ("policy", "destinations:", "destination: {}\ndestinations:", "destination"),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"), UNKNOWN, ids=[f"{u[0]}-{i}" for i, u in enumerate(UNKNOWN)]
)
def test_unknown_keys_are_errors(
    name: str, old: str, new: str, expected: str, tmp_path: Path
) -> None:
    kind = next(k for k in KINDS if k.name == name)
    assert old in kind.valid
    _, message = refusal(kind, tmp_path, kind.valid.replace(old, new, 1))
    assert expected in message
    assert re.search(r"line \d+", message)
