"""The watches file: Flux ImageRepository + ImagePolicy semantics, strict and exhaustive errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from imgctl.errors import UsageError
from imgctl.oci.reference import Reference
from imgctl.scan.policy import ImagePolicy
from imgctl.scan.watches import (
    DEFAULT_EXCLUSION_LIST,
    FLUX_INTERVAL_PATTERN,
    FLUX_TIMEOUT_PATTERN,
    MAX_EXCLUSIONS,
    AutoPromotion,
    ServiceIdentity,
    Watch,
    WatchConfig,
    WatchCredentials,
    WatchTLS,
    load_watches,
    parse_duration,
    parse_watches,
)

SECRET = "s3cr3t-Pa55w0rd"
IMAGE = "registry.example.com/team/app"


def watch(**fields: Any) -> dict[str, Any]:
    """A minimal valid watch, with ``fields`` added or replaced (None deletes a key)."""
    base: dict[str, Any] = {"name": "app", "image": IMAGE, "interval": "1m"}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def doc(*watches: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"watches": list(watches), **top}


def errors(data: object, **kwargs: Any) -> list[str]:
    """The lines of the UsageError that parsing ``data`` must raise."""
    kwargs.setdefault("source", "w.yaml")
    with pytest.raises(UsageError) as info:
        parse_watches(data, **kwargs)
    return str(info.value).splitlines()


def one_error(data: object, **kwargs: Any) -> str:
    lines = errors(data, **kwargs)
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------- valid files


def test_full_file_parses_to_dataclasses(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client-key.pem", "config.json", "pw.txt"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "pw.txt").write_text("from-file\n")
    path = tmp_path / "watches.yaml"
    path.write_text(
        """\
concurrency: 8
serviceIdentity:
  subject: imgctl-scanner
  email: scanner@example.com
  groups: [release-bots, release-bots, admins]
watches:
  - name: app
    image: registry.example.com/team/app
    interval: 1m
    timeout: 30s
    exclusionList: ["^.*\\\\.sig$", "-rc"]
    suspend: true
    policy: {semver: {range: ">=1.0.0"}}
    insecure: true
    certificates: {caFile: ca.pem, certFile: client.pem, keyFile: client-key.pem}
    credentials: {username: u, password: p}
    autoPromote: {from: dev, to: prod}
  - name: builds
    image: ghcr.io/org/builds
    interval: 1h30m
    policy: {numerical: {order: asc}}
    filterTags: {pattern: '^main-(?P<ts>[0-9]+)$', extract: '$ts'}
    credentials: {username: bot, passwordFile: pw.txt}
  - name: hub
    image: alpine
    interval: 500ms
    credentials: {dockerConfig: config.json}
"""
    )
    config = load_watches(path)

    assert config == WatchConfig(
        watches=config.watches,
        service_identity=ServiceIdentity(
            subject="imgctl-scanner",
            email="scanner@example.com",
            groups=("release-bots", "admins"),
        ),
        concurrency=8,
        source=str(path),
    )
    app, builds, hub = config.watches
    assert app == Watch(
        name="app",
        image=IMAGE,
        reference=Reference.parse(IMAGE),
        interval=60.0,
        timeout=30.0,
        exclusion_list=("^.*\\.sig$", "-rc"),
        suspend=True,
        policy=ImagePolicy.from_spec({"semver": {"range": ">=1.0.0"}}, None),
        credentials=WatchCredentials(username="u", password="p"),
        tls=WatchTLS(
            ca_file=tmp_path / "ca.pem",
            cert_file=tmp_path / "client.pem",
            key_file=tmp_path / "client-key.pem",
            insecure=True,
        ),
        auto_promote=AutoPromotion(source="dev", destination="prod"),
    )
    assert builds.interval == 5400.0
    assert builds.timeout == 5400.0
    assert builds.policy == ImagePolicy.from_spec(
        {"numerical": {"order": "asc"}}, {"pattern": "^main-(?P<ts>[0-9]+)$", "extract": "$ts"}
    )
    assert builds.credentials == WatchCredentials(username="bot", password="from-file")
    assert builds.tls == WatchTLS()
    assert hub.canonical_image_name == "docker.io/library/alpine"
    assert hub.credentials == WatchCredentials(docker_config=tmp_path / "config.json")
    assert not hub.credentials.anonymous
    # Flux's GetTimeout: the interval, but at least a second.
    assert hub.interval == 0.5
    assert hub.timeout == 1.0
    assert config.get("builds") is builds
    assert config.get("nope") is None


def test_defaults() -> None:
    config = parse_watches(doc(watch()))
    (only,) = config.watches
    assert config.concurrency == 4
    assert config.service_identity is None
    assert config.source == "<watches>"
    assert only.timeout == only.interval == 60.0
    assert only.exclusion_list == DEFAULT_EXCLUSION_LIST == ("^.*\\.sig$",)
    assert only.suspend is False
    assert only.policy is None
    assert only.credentials == WatchCredentials()
    assert only.credentials.anonymous
    assert only.tls == WatchTLS()
    assert only.auto_promote is None


def test_empty_watch_list_is_valid() -> None:
    assert parse_watches({"watches": []}).watches == ()


def test_null_optional_fields_count_as_absent() -> None:
    (only,) = parse_watches(
        doc(watch(timeout=None, policy=None) | {"suspend": None, "credentials": None})
    ).watches
    assert only.suspend is False
    assert only.credentials.anonymous


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m0s", 60.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2h45m30.5s", 9930.5),
        ("0", 0.0),
        ("0s", 0.0),
        ("+5s", 5.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("1500us", 0.0015),
        ("1500µs", 0.0015),
        ("1500μs", 0.0015),
        ("250ns", 250e-9),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, field="f") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("5x", "unknown unit 'x'"),
        ("1", "needs a unit"),
        ("-1m", "negative"),
        ("m", "expected a number"),
        ("", "empty"),
        (".s", "expected a number"),
        ("1m30", "needs a unit"),
        ("1 m", "unknown unit ' m'"),
        ("3000000h", "longest Go duration"),
        (60, "not a number"),
        (None, "not null"),
        (True, "not a boolean"),
        (["1m"], "not a list"),
    ],
)
def test_invalid_durations(value: object, detail: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(value, field="watches[1].interval")
    message = str(info.value)
    assert message.startswith("watches[1].interval: ")
    assert "is not a duration; give a duration like 1m, 90s or 1h30m" in message
    assert detail in message


def test_duration_error_in_file_names_file_field_and_value() -> None:
    line = one_error(doc(watch(), watch(name="b", interval="5x")))
    assert line == (
        'w.yaml: watches[1].interval: Invalid value: "5x": watches[1].interval in body should'
        " match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'; give a duration like 1m, 90s or 1h30m"
        " (unknown unit 'x'; Flux takes numbers with an optional fraction, each followed by"
        " ms, s, m or h)"
    )


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        # Go durations that Flux's CRD patterns refuse: refused here too, in Flux's words.
        ("interval", "0", "(Flux takes numbers with an optional fraction, each followed by ms,"),
        ("interval", "+5s", "Flux takes numbers"),
        ("interval", ".5s", "Flux takes numbers"),
        ("interval", "1.s", "Flux takes numbers"),
        ("interval", "1500us", "each followed by ms, s, m or h)"),
        ("interval", "-1m", "negative"),
        ("timeout", "1h", "each followed by ms, s or m)"),
        ("timeout", "90x", "(unknown unit 'x'; Flux takes"),
    ],
)
def test_flux_duration_patterns(field: str, value: str, detail: str) -> None:
    line = one_error(doc(watch(**{field: value})))
    pattern = FLUX_INTERVAL_PATTERN if field == "interval" else FLUX_TIMEOUT_PATTERN
    assert line.startswith(
        f'w.yaml: watches[0].{field}: Invalid value: "{value}": watches[0].{field} in body'
        f" should match '{pattern}'; give a duration like"
    )
    assert detail in line


@pytest.mark.parametrize(
    ("interval", "timeout", "seconds"),
    [("1m30s", None, 90.0), ("1.5h", "59m", 5400.0), ("500ms", "1s", 0.5), ("2h45m", "1.5m", 9900)],
)
def test_flux_durations_accepted(interval: str, timeout: str | None, seconds: float) -> None:
    parsed = parse_watches(doc(watch(interval=interval, timeout=timeout))).watches[0]
    assert parsed.interval == pytest.approx(seconds)


@pytest.mark.parametrize("interval", ["0s", "0h0m"])
def test_interval_zero_rejected(interval: str) -> None:
    assert one_error(doc(watch(interval=interval))) == (
        f'w.yaml: watches[0].interval: must be greater than 0, not "{interval}"'
    )


def test_interval_required() -> None:
    assert "watches[0].interval: is required" in one_error(doc(watch(interval=None)))


@pytest.mark.parametrize(("timeout", "ok"), [("999ms", False), ("0s", False), ("1s", True)])
def test_timeout_minimum_one_second(timeout: str, ok: bool) -> None:
    data = doc(watch(timeout=timeout))
    if ok:
        assert parse_watches(data).watches[0].timeout == 1.0
    else:
        assert "watches[0].timeout: must be at least 1s" in one_error(data)


# ---------------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            "https://registry.example.com/app",
            "value should not start with URL scheme; remove 'https://'",
        ),
        ("oci://ghcr.io/a/b", "value should not start with URL scheme; remove 'oci://'"),
        ("ghcr.io/a/b:v1.2.3", "value should not contain a tag; remove ':v1.2.3'"),
        ("alpine:3.20", "value should not contain a tag; remove ':3.20'"),
        ("localhost:5000/x:dev", "value should not contain a tag; remove ':dev'"),
        (
            "ghcr.io/a/b@sha256:" + "a" * 64,
            "value should not contain a digest; remove '@sha256:" + "a" * 64 + "'",
        ),
    ],
)
def test_flux_image_messages(image: str, message: str) -> None:
    assert one_error(doc(watch(image=image))) == f"w.yaml: watches[0].image: {message}"


@pytest.mark.parametrize("image", ["Team/App", "ghcr.io//x", "a b", "ghcr.io/a/b@sha256:zz"])
def test_invalid_image_names_wrap_the_parser_message(image: str) -> None:
    line = one_error(doc(watch(image=image)))
    assert line.startswith("w.yaml: watches[0].image: invalid reference ")


@pytest.mark.parametrize(
    ("image", "canonical"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("org/app", "docker.io/org/app"),
        ("docker.io/library/alpine", "docker.io/library/alpine"),
        ("index.docker.io/org/app", "docker.io/org/app"),
        ("ghcr.io/a/b", "ghcr.io/a/b"),
        ("localhost:5000/x", "localhost:5000/x"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x"),
    ],
)
def test_canonical_image_names(image: str, canonical: str) -> None:
    (only,) = parse_watches(doc(watch(image=image))).watches
    assert only.image == image
    assert only.canonical_image_name == canonical
    assert only.reference.tag is None
    assert only.reference.digest is None


# ------------------------------------------------------------------------- exclusion lists


@pytest.mark.parametrize(
    ("exclusions", "tag", "excluded"),
    [
        (None, "sha256-abc.sig", True),
        (None, "v1.0.0", False),
        (None, "sig", False),
        (["^.*-rc"], "sha256-abc.sig", False),  # a custom list replaces the default
        (["^.*-rc"], "1.0-rc1", True),
        (["rc"], "1.0-rc1", True),  # unanchored, like Go's MatchString
        (["^v", "dirty$"], "1.0-dirty", True),
        ([], "sha256-abc.sig", False),
    ],
)
def test_excluded(exclusions: list[str] | None, tag: str, excluded: bool) -> None:
    (only,) = parse_watches(doc(watch(exclusionList=exclusions))).watches
    assert only.excluded(tag) is excluded


def test_exclusion_list_limit() -> None:
    at_limit = [f"^x{i}$" for i in range(MAX_EXCLUSIONS)]
    assert len(parse_watches(doc(watch(exclusionList=at_limit))).watches[0].exclusion_list) == 25
    line = one_error(doc(watch(exclusionList=[*at_limit, "^y$"])))
    assert line == "w.yaml: watches[0].exclusionList: has 26 entries; the most is 25"


@pytest.mark.parametrize(
    ("exclusions", "where", "text"),
    [
        (["ok", "(unclosed"], "exclusionList[1]", '"(unclosed" is not a valid regex'),
        ([7], "exclusionList[0]", "must be a string, not 7"),
        # Go's RE2 has no lookarounds; Python's re would take this and mean something else.
        (["^(?!v).*"], "exclusionList[0]", '"^(?!v).*" is not a valid regex'),
        ("^.*\\.sig$", "exclusionList", "must be a list of regular expressions, not a string"),
    ],
)
def test_bad_exclusions(exclusions: object, where: str, text: str) -> None:
    assert one_error(doc(watch(exclusionList=exclusions))).startswith(
        f"w.yaml: watches[0].{where}: {text}"
    )


# ----------------------------------------------------------------------- names and keys


@pytest.mark.parametrize("name", ["a", "app-1", "team.app", "x" * 63, "0"])
def test_valid_names(name: str) -> None:
    assert parse_watches(doc(watch(name=name))).watches[0].name == name


@pytest.mark.parametrize("name", ["App", "-app", "app-", "app_1", "x" * 64, "a/b"])
def test_invalid_names(name: str) -> None:
    assert "is not a valid name" in one_error(doc(watch(name=name)))


def test_duplicate_names() -> None:
    lines = errors(doc(watch(), watch(image="ghcr.io/a/b"), watch(image="ghcr.io/a/c")))
    assert lines == [
        'w.yaml: watches[1].name: "app" is already used by watches[0]',
        'w.yaml: watches[2].name: "app" is already used by watches[0]',
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"watches": [], "concurrncy": 2},
            "w.yaml: unknown key \"concurrncy\" (did you mean 'concurrency'?);"
            " allowed keys: concurrency, rateLimit, serviceIdentity, watches",
        ),
        (
            doc(watch(intervall="1m", interval=None)),
            "w.yaml: watches[0]: unknown key \"intervall\" (did you mean 'interval'?);",
        ),
        (
            doc(watch(credentials={"username": "u", "password": "p", "token": "t"})),
            'w.yaml: watches[0].credentials: unknown key "token"; allowed keys: username,',
        ),
        (
            doc(watch(certificates={"ca": "x"})),
            'w.yaml: watches[0].certificates: unknown key "ca"',
        ),
        (
            {"watches": [], "serviceIdentity": {"subject": "s", "groups": ["g"], "role": "x"}},
            'w.yaml: serviceIdentity: unknown key "role"; allowed keys: subject, email, groups',
        ),
    ],
)
def test_unknown_keys(data: dict[str, Any], expected: str) -> None:
    assert any(line.startswith(expected) for line in errors(data)), errors(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "w.yaml: the document must be a mapping with a 'watches' key, not null"),
        ([], "w.yaml: the document must be a mapping with a 'watches' key, not a list"),
        ({}, "w.yaml: watches: is required (use [] for none)"),
        ({"watches": None}, "w.yaml: watches: must be a list, not null"),
        ({"watches": ["app"]}, "w.yaml: watches[0]: must be a mapping, not a string"),
        ({"watches": [], "concurrency": 0}, "w.yaml: concurrency: must be between 1 and 64"),
        ({"watches": [], "concurrency": 65}, "w.yaml: concurrency: must be between 1 and 64"),
        (
            {"watches": [], "concurrency": "4"},
            'w.yaml: concurrency: must be a whole number, not "4"',
        ),
        ({"watches": [], "concurrency": True}, "w.yaml: concurrency: must be a whole number"),
        (doc(watch(name=None)), "w.yaml: watches[0].name: is required"),
        (doc(watch(image=None)), "w.yaml: watches[0].image: is required"),
        (doc(watch(image="")), "w.yaml: watches[0].image: must not be empty"),
        (doc(watch(suspend="yes please")), "w.yaml: watches[0].suspend: must be true or false"),
        (doc(watch(insecure=1)), "w.yaml: watches[0].insecure: must be true or false, not 1"),
    ],
)
def test_structure_errors(data: object, expected: str) -> None:
    assert one_error(data).startswith(expected)


@pytest.mark.parametrize("concurrency", [1, 64])
def test_concurrency_bounds(concurrency: int) -> None:
    assert parse_watches({"watches": [], "concurrency": concurrency}).concurrency == concurrency


# ---------------------------------------------------------------------------- credentials


def test_password_from_environment() -> None:
    data = doc(watch(credentials={"username": "u", "passwordEnv": "REG_PW"}))
    creds = parse_watches(data, environ={"REG_PW": SECRET}).watches[0].credentials
    assert creds == WatchCredentials(username="u", password=SECRET)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({}, "environment variable REG_PW is not set"),
        ({"REG_PW": ""}, "environment variable REG_PW is empty"),
    ],
)
def test_password_environment_missing(environ: dict[str, str], problem: str) -> None:
    data = doc(watch(credentials={"username": "u", "passwordEnv": "REG_PW"}))
    assert one_error(data, environ=environ) == (
        f"w.yaml: watches[0].credentials.passwordEnv: {problem}"
    )


@pytest.mark.parametrize(
    ("content", "password"),
    [(f"{SECRET}\n", SECRET), (f"{SECRET}\r\n", SECRET), (f"{SECRET}\n\n", f"{SECRET}\n")],
)
def test_password_from_file(tmp_path: Path, content: str, password: str) -> None:
    (tmp_path / "pw").write_bytes(content.encode())
    data = doc(watch(credentials={"username": "u", "passwordFile": "pw"}))
    creds = parse_watches(data, base_dir=tmp_path).watches[0].credentials
    assert creds.password == password


def test_password_file_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    data = doc(
        watch(credentials={"username": "u", "passwordFile": "missing"}),
        watch(name="b", credentials={"username": "u", "passwordFile": "empty"}),
    )
    assert errors(data, base_dir=tmp_path) == [
        f"w.yaml: watches[0].credentials.passwordFile: {tmp_path / 'missing'} does not exist",
        f"w.yaml: watches[1].credentials.passwordFile: {tmp_path / 'empty'} is empty",
    ]


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"username": "u"}, "username needs one of password, passwordEnv or passwordFile"),
        ({"password": SECRET}, "credentials.username: is required"),
        ({}, "give username with one of password, passwordEnv or passwordFile, or dockerConfig"),
        (
            {"username": "u", "password": SECRET, "passwordEnv": "X"},
            "give only one of password, passwordEnv",
        ),
        (
            {"dockerConfig": "cfg.json", "username": "u", "password": SECRET},
            "give either dockerConfig or username and password, not both",
        ),
        ({"dockerConfig": "missing.json"}, "credentials.dockerConfig: "),
        (
            {"username": "u", "passwordEnv": SECRET},
            "credentials.passwordEnv: is not an environment variable name",
        ),
        (
            {"username": "u", "password": 12345},
            "credentials.password: must be a string, not a number",
        ),
        ({"username": "u", "password": ""}, "credentials.password: must not be empty"),
        ("u:p", "credentials: must be a mapping, not a string"),
    ],
)
def test_credential_errors(tmp_path: Path, credentials: object, expected: str) -> None:
    (tmp_path / "cfg.json").write_text("{}")
    line = one_error(doc(watch(credentials=credentials)), base_dir=tmp_path)
    assert line.startswith("w.yaml: watches[0]")
    assert expected in line
    assert SECRET not in line
    assert "12345" not in line


def test_docker_config_missing_file(tmp_path: Path) -> None:
    line = one_error(doc(watch(credentials={"dockerConfig": "nope.json"})), base_dir=tmp_path)
    assert line == (
        f"w.yaml: watches[0].credentials.dockerConfig: {tmp_path / 'nope.json'} does not exist"
    )


def test_password_never_shown(tmp_path: Path) -> None:
    config = parse_watches(doc(watch(credentials={"username": "u", "password": SECRET})))
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.watches[0])
    assert SECRET not in repr(config.watches[0].credentials)
    assert config.watches[0].credentials.password == SECRET

    # A file with every other thing wrong still keeps the password out of the message.
    bad = doc(
        watch(interval="5x", credentials={"username": "u", "password": SECRET, "tokn": SECRET}),
        watch(name="b", credentials={"password": SECRET, "passwordEnv": SECRET}),
        watch(name="c", credentials={"username": "u", "passwordEnv": SECRET}),
    )
    message = "\n".join(errors(bad, environ={}))
    assert SECRET not in message


# ---------------------------------------------------------------------------- certificates


def test_certificates(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("ca")
    (tmp_path / "c.pem").write_text("c")
    only_ca = doc(watch(certificates={"caFile": "ca.pem"}))
    assert parse_watches(only_ca, base_dir=tmp_path).watches[0].tls == WatchTLS(
        ca_file=tmp_path / "ca.pem"
    )
    absolute = doc(watch(certificates={"caFile": str(tmp_path / "ca.pem")}))
    assert parse_watches(absolute, base_dir=Path("/elsewhere")).watches[0].tls.ca_file == (
        tmp_path / "ca.pem"
    )


@pytest.mark.parametrize(
    ("certificates", "expected"),
    [
        (
            {"certFile": "c.pem"},
            "certificates: certFile and keyFile go together; keyFile is missing",
        ),
        (
            {"keyFile": "c.pem"},
            "certificates: certFile and keyFile go together; certFile is missing",
        ),
        ({"caFile": "nope.pem"}, "certificates.caFile: {tmp}/nope.pem does not exist"),
        ({"caFile": "."}, "certificates.caFile: {tmp} is not a file"),
    ],
)
def test_certificate_errors(tmp_path: Path, certificates: object, expected: str) -> None:
    (tmp_path / "c.pem").write_text("c")
    line = one_error(doc(watch(certificates=certificates)), base_dir=tmp_path)
    assert line.startswith(f"w.yaml: watches[0].{expected.format(tmp=tmp_path)}")


# ------------------------------------------------------------------- policy and autoPromote


def test_policy_errors_carry_file_and_field() -> None:
    line = one_error(doc(watch(policy={"semver": {"range": "not a range"}})))
    assert line.startswith("w.yaml: watches[0].policy")


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"policy": {"semver": {"range": "not a range"}}}, "watches[0].policy.semver.range"),
        ({"policy": {"semvr": {}}}, "watches[0].policy.semvr"),
        ({"policy": "semver"}, "watches[0].policy"),
        (
            {"policy": {"alphabetical": {}}, "filterTags": {"pattern": "("}},
            "watches[0].filterTags.pattern",
        ),
    ],
)
def test_policy_error_paths(fields: dict[str, Any], where: str) -> None:
    assert one_error(doc(watch(**fields))).startswith(f"w.yaml: {where}")


def test_policy_with_filter_tags_picks_latest() -> None:
    (only,) = parse_watches(
        doc(
            watch(
                policy={"numerical": {"order": "asc"}},
                filterTags={"pattern": "^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "extract": "$ts"},
            )
        )
    ).watches
    assert only.policy is not None
    tags = ["main-abc-100", "main-def-200", "feature-x-300", "sha256-1.sig"]
    assert only.policy.latest(t for t in tags if not only.excluded(t)) == "main-def-200"


def test_filter_tags_needs_policy() -> None:
    line = one_error(doc(watch(filterTags={"pattern": ".*"})))
    assert line.startswith("w.yaml: watches[0].filterTags: needs a policy")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"autoPromote": {"from": "dev", "to": "prod"}}, "autoPromote: needs a policy"),
        (
            {"autoPromote": {"from": "dev", "to": "dev"}, "policy": {"alphabetical": {}}},
            'autoPromote: from and to are both "dev"',
        ),
        (
            {"autoPromote": {"from": "dev"}, "policy": {"alphabetical": {}}},
            "autoPromote.to: is required",
        ),
        (
            {"autoPromote": {"from": "", "to": "prod"}, "policy": {"alphabetical": {}}},
            "autoPromote.from: must not be empty",
        ),
        (
            {"autoPromote": {"from": "dev", "to": ["prod"]}, "policy": {"alphabetical": {}}},
            "autoPromote.to: must be a string, not a list",
        ),
    ],
)
def test_auto_promote_errors(fields: dict[str, Any], expected: str) -> None:
    assert one_error(doc(watch(**fields))).startswith(f"w.yaml: watches[0].{expected}")


# ----------------------------------------------------------------------- serviceIdentity


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ({"groups": ["g"]}, "serviceIdentity.subject: is required"),
        ({"subject": "s"}, "serviceIdentity.groups: is required"),
        ({"subject": "s", "groups": []}, "serviceIdentity.groups: must name at least one group"),
        ({"subject": "s", "groups": "g"}, "serviceIdentity.groups: must be a list of strings"),
        ({"subject": "s", "groups": ["g", ""]}, "serviceIdentity.groups[1]: must be a non-empty"),
        (
            {"subject": "s", "groups": ["g"], "email": "nope"},
            'serviceIdentity.email: "nope" is not',
        ),
        ({"subject": 5, "groups": ["g"]}, "serviceIdentity.subject: must be a string, not 5"),
        ("bot", "serviceIdentity: must be a mapping, not a string"),
    ],
)
def test_service_identity_errors(identity: object, expected: str) -> None:
    assert one_error({"watches": [], "serviceIdentity": identity}).startswith(f"w.yaml: {expected}")


def test_service_identity_without_email() -> None:
    config = parse_watches({"watches": [], "serviceIdentity": {"subject": "s", "groups": ["g"]}})
    assert config.service_identity == ServiceIdentity(subject="s", email=None, groups=("g",))


# ------------------------------------------------------------------------ errors together


def test_all_errors_reported_together() -> None:
    data = {
        "concurrency": 100,
        "watches": [
            watch(interval="5x", image="https://x.io/a"),
            watch(timeout="10ms", exclusionList=["("], autoPromote={"from": "a", "to": "a"}),
            "not a watch",
        ],
    }
    lines = errors(data)
    assert all(line.startswith("w.yaml: ") for line in lines)
    wheres = [re.sub(r"^w\.yaml: ([^ ]*):.*$", r"\1", line) for line in lines]
    assert wheres == [
        "concurrency",
        "watches[0].image",
        "watches[0].interval",
        "watches[1].name",
        "watches[1].timeout",
        "watches[1].exclusionList[0]",
        "watches[1].autoPromote",
        "watches[1].autoPromote",
        "watches[2]",
    ]


# ---------------------------------------------------------------------------- load_watches


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(UsageError, match=re.escape(f"watches file {path} does not exist")):
        load_watches(path)


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        load_watches(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("watches:\n  - name: app\n    image: [unclosed\n", "line 4, column 1: invalid YAML"),
        (
            "watches: []\nconcurrency: 2\nconcurrency: 3\n",
            "line 3, column 1: duplicate key 'concurrency' (first at line 2, column 1)",
        ),
        ("watches:\n- name: a\n\tinterval: 1m\n", "line 3, column 1: invalid YAML"),
    ],
)
def test_load_bad_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_watches(path)
    assert str(info.value).startswith(f"{path}: {expected}")


def test_load_resolves_paths_from_the_file_and_reports_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "pw").write_text(SECRET)
    path = sub / "watches.yaml"
    path.write_text(
        "watches:\n"
        "  - name: app\n"
        "    image: ghcr.io/a/b\n"
        "    interval: 5m\n"
        "    credentials: {username: u, passwordFile: pw}\n"
    )
    assert load_watches(path).watches[0].credentials.password == SECRET
    path.write_text("watches:\n  - {name: app, image: ghcr.io/a/b, interval: 5x}\n")
    with pytest.raises(
        UsageError, match=re.escape(f'{path}: line 2: watches[0].interval: Invalid value: "5x"')
    ):
        load_watches(path)


def test_load_names_the_line_of_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "serviceIdentity: {subject: bot, groups: [ops]}\n"  # 1
        "watches:\n"  # 2
        "  - {name: web, image: reg.example.com/a, interval: 1h}\n"  # 3
        "  - name: api\n"  # 4
        "    image: https://reg.example.com/b\n"  # 5
        "    interval: 5x\n"  # 6
        "    policy:\n"  # 7
        "      semver:\n"  # 8
        "        range: '>>1'\n"  # 9
        "    exclusionList: ['(?=x)']\n"  # 10
        "  - {name: web, image: reg.example.com/c, interval: 1m, credentials: {username: u}}\n"
        "  - name: no-image\n"  # 12
        "    interval: 1m\n"  # 13
        "concurrency: 0\n"  # 14
    )
    with pytest.raises(UsageError) as info:
        load_watches(path)
    lines = {
        line.split(": ", 3)[2]: int(line.split(": ", 3)[1].removeprefix("line "))
        for line in str(info.value).splitlines()
    }
    assert lines == {
        "watches[1].image": 5,
        "watches[1].interval": 6,
        "watches[1].policy.semver.range": 9,
        "watches[1].exclusionList[0]": 10,  # the list's line: items have none of their own
        "watches[2].name": 11,
        "watches[2].credentials": 11,
        "watches[3].image": 12,  # missing: the line of its watch
        "concurrency": 14,
    }
    assert all(line.startswith(f"{path}: line ") for line in str(info.value).splitlines())


def test_a_loaded_file_knows_the_line_of_each_watch(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "watches:\n"
        "  - {name: web, image: reg.example.com/a, interval: 1h}\n"
        "  - name: api\n"
        "    image: reg.example.com/b\n"
        "    interval: 1m\n"
    )
    config = load_watches(path)
    assert config.where("web") == f"{path}: line 2: "
    assert config.where("api") == f"{path}: line 3: "
    assert config.where("gone") == f"{path}: "
    assert parse_watches({"watches": []}, source="x.yaml").where("web") == "x.yaml: "


def test_load_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("")
    with pytest.raises(UsageError, match="must be a mapping with a 'watches' key, not null"):
        load_watches(path)
