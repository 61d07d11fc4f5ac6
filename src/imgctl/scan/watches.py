"""The watches file: which repositories ``imgctl scan`` / ``imgctl server`` poll, and how.

Each watch is a Flux ``ImageRepository`` (image, interval, timeout, exclusionList, suspend,
insecure, certSecretRef, secretRef) with an optional ``ImagePolicy`` folded in, plus an optional
``autoPromote`` edge: when the policy's latest tag changes, promote it from one environment to
another. Reading is strict and exhaustive: unknown keys and wrong types are errors, and every
problem in the file is reported at once, one line each, naming the file, the line (when read
from a file) and the field path.

Credentials named by ``passwordEnv`` / ``passwordFile`` are read when the file is loaded, so a
missing secret fails at start-up rather than on the first scan. No password ever reaches an
error message or a repr.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from imgctl._internal import strict_yaml
from imgctl._internal.files import read_text
from imgctl._internal.messages import yaml_kind
from imgctl.errors import ImgctlError, InvalidReferenceError, UsageError
from imgctl.oci.reference import Reference
from imgctl.scan._durations import (
    DURATION_HINT,
    FLUX_INTERVAL_PATTERN,
    FLUX_INTERVAL_UNITS,
    FLUX_TIMEOUT_PATTERN,
    FLUX_TIMEOUT_UNITS,
    parse_duration,
)
from imgctl.scan._fields import FieldReader, show

# Exclusion lists are Go regexes, like filterTags patterns: one RE2-to-Python translation (which
# also refuses what RE2 refuses, such as lookarounds) serves both.
from imgctl.scan.policy import ImagePolicy, compile_go_regex

__all__ = [
    "DEFAULT_EXCLUSION_LIST",
    "FLUX_INTERVAL_PATTERN",
    "FLUX_TIMEOUT_PATTERN",
    "MAX_EXCLUSIONS",
    "AutoPromotion",
    "ServiceIdentity",
    "Watch",
    "WatchConfig",
    "WatchCredentials",
    "WatchTLS",
    "load_watches",
    "parse_duration",
    "parse_watches",
    "watches_from_text",
]

DEFAULT_EXCLUSION_LIST: Final = ("^.*\\.sig$",)
"""Flux's default: skip cosign signature tags (``sha256-<hex>.sig``)."""

MAX_EXCLUSIONS: Final = 25
"""Flux's limit on ``exclusionList`` entries."""

DEFAULT_CONCURRENCY: Final = 4
MAX_CONCURRENCY: Final = 64
MAX_RATE_LIMIT: Final = 10_000.0
"""The most requests per second ``rateLimit`` may allow each registry."""
MIN_TIMEOUT: Final = 1.0

_TOP_KEYS: Final = ("concurrency", "rateLimit", "serviceIdentity", "watches")
_WATCH_KEYS: Final = (
    "name",
    "image",
    "interval",
    "timeout",
    "exclusionList",
    "suspend",
    "policy",
    "filterTags",
    "insecure",
    "certificates",
    "credentials",
    "autoPromote",
)
_CERT_KEYS: Final = ("caFile", "certFile", "keyFile")
_CREDENTIAL_KEYS: Final = ("username", "password", "passwordEnv", "passwordFile", "dockerConfig")
_PASSWORD_SOURCES: Final = ("password", "passwordEnv", "passwordFile")
_AUTO_PROMOTE_KEYS: Final = ("from", "to")
_IDENTITY_KEYS: Final = ("subject", "email", "groups")

# A Kubernetes object name (RFC 1123 subdomain), capped at a DNS label's length so the name
# fits in metric labels and log lines unchanged.
_NAME_RE: Final = re.compile(r"[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?")
_NAME_MAX: Final = 63
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# ----------------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class WatchCredentials:
    """How to log in to the watched registry (Flux ``secretRef``); all None means anonymous."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    docker_config: Path | None = None

    @property
    def anonymous(self) -> bool:
        """True when the watch gives no credentials of its own."""
        return self.username is None and self.docker_config is None


@dataclass(frozen=True, slots=True)
class WatchTLS:
    """TLS settings for the watched registry (Flux ``certSecretRef`` and ``insecure``)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class AutoPromotion:
    """Promote the policy's new latest tag from environment ``source`` to ``destination``."""

    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """Who the server's automatic promotions run as."""

    subject: str
    email: str | None
    groups: tuple[str, ...]


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(compile_go_regex(pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Watch:
    """One watched repository: a Flux ImageRepository with its ImagePolicy folded in."""

    name: str
    image: str
    reference: Reference
    interval: float
    timeout: float
    exclusion_list: tuple[str, ...] = DEFAULT_EXCLUSION_LIST
    suspend: bool = False
    policy: ImagePolicy | None = None
    credentials: WatchCredentials = WatchCredentials()
    tls: WatchTLS = WatchTLS()
    auto_promote: AutoPromotion | None = None

    @property
    def canonical_image_name(self) -> str:
        """The repository's canonical name, e.g. ``docker.io/library/alpine``."""
        return self.reference.name

    def excluded(self, tag: str) -> bool:
        """True when any exclusionList expression matches somewhere in ``tag``."""
        # re.search, not re.match: Go's Regexp.MatchString is unanchored too.
        return any(pattern.search(tag) for pattern in _compiled(self.exclusion_list))


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """A whole watches file."""

    watches: tuple[Watch, ...]
    service_identity: ServiceIdentity | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    source: str = "<watches>"
    # Requests per second to each registry, all its watches together (None: no limit).
    rate_limit: float | None = None
    # Where each watch starts in the file, for messages about it; not part of what it means.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def get(self, name: str) -> Watch | None:
        """The watch called ``name``, or None."""
        for watch in self.watches:
            if watch.name == name:
                return watch
        return None

    def where(self, name: str) -> str:
        """``"FILE: line N: "`` for the watch called ``name`` (no line when not from a file)."""
        line = self.lines.get(name)
        return f"{self.source}: line {line}: " if line else f"{self.source}: "


# ---------------------------------------------------------------------------- file reading


class _Reader(FieldReader):
    """Turns the parsed watches document into dataclasses, collecting every problem on the way."""

    def __init__(
        self,
        source: str,
        base_dir: Path | None,
        environ: Mapping[str, str],
        document: strict_yaml.Document | None = None,
    ) -> None:
        super().__init__(source, base_dir, document)
        self.environ = environ
        self.lines: dict[str, int] = {}

    def duration(
        self, data: Mapping[str, object], key: str, where: str, flux_units: tuple[str, ...]
    ) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        try:
            return parse_duration(value, field=f"{where}.{key}", flux_units=flux_units)
        except UsageError as exc:
            self.add_error(exc)
            return None

    # -- the document

    def config(self, data: object) -> WatchConfig | None:
        if not isinstance(data, Mapping):
            self.add(
                "",
                f"the document must be a mapping with a 'watches' key, not {yaml_kind(data)}",
            )
            return None
        top = self.mapping(data, "", _TOP_KEYS)
        assert top is not None  # a mapping, checked just above
        concurrency = self.concurrency(top.get("concurrency"))
        rate_limit = self.rate_limit(top.get("rateLimit"))
        identity_data = top.get("serviceIdentity")
        identity = None if identity_data is None else self.identity(identity_data)

        watches: list[Watch] = []
        if "watches" not in top:
            self.add("watches", "is required (use [] for none)")
        elif not isinstance(top["watches"], list):
            self.add("watches", f"must be a list, not {yaml_kind(top['watches'])}")
        else:
            first_use: dict[str, str] = {}
            for index, item in enumerate(top["watches"]):
                watch = self.watch(item, f"watches[{index}]", first_use)
                if watch is not None:
                    watches.append(watch)
                    line = self.line(f"watches[{index}]")
                    if line is not None:
                        self.lines[watch.name] = line
        if self.problems:
            return None
        return WatchConfig(
            watches=tuple(watches),
            service_identity=identity,
            concurrency=concurrency,
            source=self.source,
            rate_limit=rate_limit,
            lines=self.lines,
        )

    def concurrency(self, value: object) -> int:
        if value is None:
            return DEFAULT_CONCURRENCY
        if isinstance(value, bool) or not isinstance(value, int):
            self.add("concurrency", f"must be a whole number, not {show(value)}")
            return DEFAULT_CONCURRENCY
        if not 1 <= value <= MAX_CONCURRENCY:
            self.add("concurrency", f"must be between 1 and {MAX_CONCURRENCY}, not {value}")
            return DEFAULT_CONCURRENCY
        return value

    def rate_limit(self, value: object) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add("rateLimit", f"must be a number of requests per second, not {show(value)}")
            return None
        if not 0 < value <= MAX_RATE_LIMIT:
            self.add(
                "rateLimit",
                f"must be more than 0 and at most {MAX_RATE_LIMIT:g} requests per second, "
                f"not {value}",
            )
            return None
        return float(value)

    def identity(self, value: object) -> ServiceIdentity | None:
        where = "serviceIdentity"
        data = self.mapping(value, where, _IDENTITY_KEYS)
        if data is None:
            return None
        before = len(self.problems)
        subject = self.string(data, "subject", where, required=True)
        email = self.string(data, "email", where)
        if email is not None:
            local, at, domain = email.rpartition("@")
            if not (at and local and domain):
                self.add(f"{where}.email", f"{show(email)} is not an email address")
        groups: list[str] = []
        raw_groups = data.get("groups")
        if raw_groups is None:
            self.add(f"{where}.groups", "is required: the groups promotions are authorised by")
        elif not isinstance(raw_groups, list):
            self.add(f"{where}.groups", f"must be a list of strings, not {yaml_kind(raw_groups)}")
        elif not raw_groups:
            self.add(f"{where}.groups", "must name at least one group")
        else:
            for index, group in enumerate(raw_groups):
                if not isinstance(group, str) or not group:
                    self.add(
                        f"{where}.groups[{index}]",
                        f"must be a non-empty string, not {show(group)}",
                    )
                else:
                    groups.append(group)
        if len(self.problems) > before or subject is None:
            return None
        # Order kept, repeats dropped: a group listed twice grants nothing more.
        return ServiceIdentity(subject, email, tuple(dict.fromkeys(groups)))

    def watch(self, value: object, where: str, first_use: dict[str, str]) -> Watch | None:
        data = self.mapping(value, where, _WATCH_KEYS)
        if data is None:
            return None
        before = len(self.problems)

        name = self.string(data, "name", where, required=True)
        if name is not None:
            if len(name) > _NAME_MAX or not _NAME_RE.fullmatch(name):
                self.add(
                    f"{where}.name",
                    f"{show(name)} is not a valid name; use at most {_NAME_MAX} lowercase"
                    " letters, digits, '-' and '.', starting and ending with a letter or digit",
                )
            elif name in first_use:
                self.add(f"{where}.name", f"{show(name)} is already used by {first_use[name]}")
            else:
                first_use[name] = where

        image = self.string(data, "image", where, required=True)
        reference = None if image is None else self.image(image, f"{where}.image")

        interval = self.duration(data, "interval", where, FLUX_INTERVAL_UNITS)
        if "interval" not in data or data["interval"] is None:
            self.add(f"{where}.interval", f"is required; {DURATION_HINT}")
        elif interval is not None and interval <= 0:
            self.add(f"{where}.interval", f"must be greater than 0, not {show(data['interval'])}")
            interval = None

        timeout = self.duration(data, "timeout", where, FLUX_TIMEOUT_UNITS)
        if timeout is not None and timeout < MIN_TIMEOUT:
            self.add(
                f"{where}.timeout",
                f"must be at least 1s, not {show(data['timeout'])}",
            )
        if timeout is None and interval is not None:
            # Flux's GetTimeout: the interval, but never under a second.
            timeout = max(interval, MIN_TIMEOUT)

        exclusions = self.exclusions(data, where)
        suspend = self.flag(data, "suspend", where)
        insecure = self.flag(data, "insecure", where)
        policy = self.policy(data, where)
        tls = self.certificates(data.get("certificates"), f"{where}.certificates", insecure)
        credentials = self.credentials(data.get("credentials"), f"{where}.credentials")
        auto_promote = self.auto_promote(data.get("autoPromote"), f"{where}.autoPromote")
        if data.get("autoPromote") is not None and data.get("policy") is None:
            self.add(
                f"{where}.autoPromote",
                "needs a policy: the tag promoted is the one the policy picks",
            )

        # Any None below was reported above; checking them again narrows the types.
        if (
            len(self.problems) > before
            or name is None
            or image is None
            or reference is None
            or interval is None
            or timeout is None
        ):
            return None
        return Watch(
            name=name,
            image=image,
            reference=reference,
            interval=interval,
            timeout=timeout,
            exclusion_list=exclusions,
            suspend=suspend,
            policy=policy,
            credentials=credentials,
            tls=tls,
            auto_promote=auto_promote,
        )

    def image(self, image: str, where: str) -> Reference | None:
        # Flux's image-reflector-controller checks and wording, after our field path.
        if "://" in image:
            scheme = image.split("://", 1)[0]
            self.add(where, f"value should not start with URL scheme; remove '{scheme}://'")
            return None
        try:
            reference = Reference.parse(image)
        except InvalidReferenceError as exc:
            self.add(where, str(exc))
            return None
        if reference.tag is not None:
            self.add(where, f"value should not contain a tag; remove ':{reference.tag}'")
        if reference.digest is not None:
            self.add(where, f"value should not contain a digest; remove '@{reference.digest}'")
        if reference.tag is not None or reference.digest is not None:
            return None
        return reference

    def exclusions(self, data: Mapping[str, object], where: str) -> tuple[str, ...]:
        value = data.get("exclusionList")
        path = f"{where}.exclusionList"
        if value is None:
            return DEFAULT_EXCLUSION_LIST
        if not isinstance(value, list):
            self.add(path, f"must be a list of regular expressions, not {yaml_kind(value)}")
            return DEFAULT_EXCLUSION_LIST
        if len(value) > MAX_EXCLUSIONS:
            self.add(path, f"has {len(value)} entries; the most is {MAX_EXCLUSIONS}")
        patterns: list[str] = []
        for index, pattern in enumerate(value):
            if not isinstance(pattern, str):
                self.add(f"{path}[{index}]", f"must be a string, not {show(pattern)}")
                continue
            try:
                compile_go_regex(pattern)
            except ValueError as exc:
                self.add(f"{path}[{index}]", f"{show(pattern)} is not a valid regex: {exc}")
                continue
            patterns.append(pattern)
        # An explicit [] means "exclude nothing", as in Flux, where the default applies only
        # when the field is absent.
        return tuple(patterns)

    def policy(self, data: Mapping[str, object], where: str) -> ImagePolicy | None:
        spec = data.get("policy")
        filter_tags = data.get("filterTags")
        if spec is None:
            if filter_tags is not None:
                self.add(f"{where}.filterTags", "needs a policy: filterTags only narrows its tags")
            return None
        try:
            return ImagePolicy.from_spec(spec, filter_tags, where=f"{where}.policy")
        except ImgctlError as exc:
            self.add_error(exc)
            return None

    def certificates(self, value: object, where: str, insecure: bool) -> WatchTLS:
        if value is None:
            return WatchTLS(insecure=insecure)
        data = self.mapping(value, where, _CERT_KEYS)
        if data is None:
            return WatchTLS(insecure=insecure)
        ca_file = self.existing_file(data, "caFile", where)
        cert_file = self.existing_file(data, "certFile", where)
        key_file = self.existing_file(data, "keyFile", where)
        if (data.get("certFile") is None) != (data.get("keyFile") is None):
            missing = "keyFile" if data.get("keyFile") is None else "certFile"
            self.add(where, f"certFile and keyFile go together; {missing} is missing")
        return WatchTLS(ca_file, cert_file, key_file, insecure)

    def credentials(self, value: object, where: str) -> WatchCredentials:
        if value is None:
            return WatchCredentials()
        data = self.mapping(value, where, _CREDENTIAL_KEYS)
        if data is None:
            return WatchCredentials()
        given = [key for key in _PASSWORD_SOURCES if data.get(key) is not None]
        has_username = data.get("username") is not None
        if data.get("dockerConfig") is not None:
            others = (["username"] if has_username else []) + given
            if others:
                self.add(
                    where,
                    f"give either dockerConfig or username and password, not both"
                    f" (found dockerConfig and {', '.join(others)})",
                )
                return WatchCredentials()
            docker_config = self.existing_file(data, "dockerConfig", where)
            return WatchCredentials(docker_config=docker_config)
        if len(given) > 1:
            self.add(where, f"give only one of {', '.join(given)}")
            return WatchCredentials()
        if not has_username and not given:
            self.add(
                where,
                "give username with one of password, passwordEnv or passwordFile, or dockerConfig",
            )
            return WatchCredentials()
        username = self.string(data, "username", where, required=True)
        if not given:
            self.add(where, "username needs one of password, passwordEnv or passwordFile")
            return WatchCredentials()
        password = self.password(data, given[0], where)
        if username is None or password is None:
            return WatchCredentials()
        return WatchCredentials(username=username, password=password)

    def password(self, data: Mapping[str, object], key: str, where: str) -> str | None:
        if key == "password":
            return self.string(data, key, where, secret=True)
        name = self.string(data, key, where)
        if name is None:
            return None
        path = f"{where}.{key}"
        if key == "passwordEnv":
            if not _ENV_NAME_RE.fullmatch(name):
                # Not echoed: a value that is no variable name may be the password itself.
                self.add(path, "is not an environment variable name (letters, digits and _)")
                return None
            secret = self.environ.get(name)
            if secret is None:
                self.add(path, f"environment variable {name} is not set")
            elif not secret:
                self.add(path, f"environment variable {name} is empty")
            return secret or None
        file = self.path(name)
        try:
            secret = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.add(path, f"{file} does not exist")
            return None
        except UnicodeDecodeError:
            self.add(path, f"{file} is not UTF-8 text")
            return None
        except OSError as exc:
            self.add(path, f"cannot read {file}: {exc.strerror or type(exc).__name__}")
            return None
        # Like a Kubernetes secret mounted from `echo pw > file`: one trailing newline is the
        # editor's, not the password's.
        secret = secret.removesuffix("\n").removesuffix("\r")
        if not secret:
            self.add(path, f"{file} is empty")
            return None
        return secret

    def auto_promote(self, value: object, where: str) -> AutoPromotion | None:
        if value is None:
            return None
        data = self.mapping(value, where, _AUTO_PROMOTE_KEYS)
        if data is None:
            return None
        source = self.string(data, "from", where, required=True)
        destination = self.string(data, "to", where, required=True)
        if source is None or destination is None:
            return None
        if source == destination:
            self.add(where, f"from and to are both {show(source)}; promote between two envs")
            return None
        return AutoPromotion(source, destination)


def parse_watches(
    data: object,
    *,
    source: str = "<watches>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WatchConfig:
    """Validate a parsed watches document; raise one UsageError listing every problem."""
    reader = _Reader(source, base_dir, os.environ if environ is None else environ)
    config = reader.config(data)
    reader.check()
    assert config is not None  # no problems means the reader built it
    return config


def load_watches(path: Path, *, environ: Mapping[str, str] | None = None) -> WatchConfig:
    """Read and validate a watches YAML file; relative paths in it are from its directory."""
    return watches_from_text(read_text(path, "watches file"), path, environ=environ)


def watches_from_text(
    text: str, path: Path, *, environ: Mapping[str, str] | None = None
) -> WatchConfig:
    """Validate ``text``, read from the watches file ``path``; errors name the file and line."""
    try:
        document = strict_yaml.load_document(text)
    except strict_yaml.StrictYAMLError as exc:
        raise UsageError(f"{path}: {exc}") from None
    reader = _Reader(str(path), path.parent, os.environ if environ is None else environ, document)
    config = reader.config(document.data)
    reader.check()
    assert config is not None  # no problems means the reader built it
    return config
