"""Credentials from environment entries: ``IMGCTL_CREDS_*`` and imgpkg's ``IMGPKG_REGISTRY_*``.

An entry is a group of variables sharing a suffix (``IMGCTL_CREDS_HOSTNAME_prod``,
``IMGCTL_CREDS_USERNAME_prod``...), or the unsuffixed group. HOSTNAME says where the entry
applies: a host (labels may be globs), a port, and optionally a repository path prefix.

Where imgctl deliberately differs from imgpkg: path prefixes match whole segments
(``quay.io/core`` does not cover ``quay.io/coreos/etcd``), ``docker.io`` and ``index.docker.io``
are one host, and an entry that cannot work (unknown field, credentials without a HOSTNAME, a
username without a password) is an error naming the variable instead of being ignored.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from imgctl.authn._keychain import ANONYMOUS, Credential, Resolution, SourceKeychain
from imgctl.errors import CredentialError
from imgctl.oci.reference import DEFAULT_REGISTRY, canonical_registry

__all__ = ["EnvEntry", "EnvKeychain", "parse_entries"]

PREFIXES = ("IMGCTL_CREDS_", "IMGPKG_REGISTRY_")
FIELDS = ("HOSTNAME", "USERNAME", "PASSWORD", "IDENTITY_TOKEN", "REGISTRY_TOKEN")
# imgpkg keeps its Azure config path under the same prefix; it is not a credential entry.
_NOT_ENTRIES = frozenset({"IMGPKG_REGISTRY_AZURE_CR_CONFIG"})
_SUFFIX_RE = re.compile(r"[A-Za-z0-9]+")
_GLOB_CHARS = frozenset("*?[")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_LABEL_RE = re.compile(r"[a-z0-9*?\[\]!^-]+")
_DOCKER_HUB_NAMES = (DEFAULT_REGISTRY, "index.docker.io", "registry-1.docker.io")
_HINT = "HOSTNAME takes host[:port][/repository/path], e.g. registry.example.com:5000/team"


@dataclass(frozen=True, slots=True)
class EnvEntry:
    """One credential entry from the environment, with where it applies."""

    variable: str  # the HOSTNAME variable, naming the entry in messages
    hostname: str  # the value as given
    host_labels: tuple[str, ...]
    port: str
    path: tuple[str, ...]
    credential: Credential
    order: int

    @property
    def glob(self) -> bool:
        """True when some host label is a glob."""
        return any(_GLOB_CHARS & set(label) for label in self.host_labels)

    @property
    def literal_chars(self) -> int:
        """Characters of the host that are not wildcards: more means more specific."""
        return sum(1 for label in self.host_labels for c in label if c not in "*?")

    def sort_key(self) -> tuple[int, int, int, int]:
        """Most specific first: exact host, then longer path, then fewer wildcards."""
        return (int(self.glob), -len(self.path), -self.literal_chars, self.order)

    def mismatch(self, registry: str, repository: str) -> str | None:
        """Why this entry does not apply to ``registry/repository``; None when it does."""
        host = canonical_registry(registry).lower()
        # Docker Hub answers to several names; a glob may have been written for any of them.
        why = None
        for name in _DOCKER_HUB_NAMES if host == DEFAULT_REGISTRY else (host,):
            why = self._host_mismatch(name)
            if why is None:
                break
        if why is not None:
            return why
        segments = tuple(s for s in repository.split("/") if s)
        if segments[: len(self.path)] != self.path:
            return f"path {'/'.join(self.path)!r} is not a prefix of {repository!r}"
        return None

    def _host_mismatch(self, host: str) -> str | None:
        labels, port = _split_host(host)
        if port != self.port:
            return f"port {self.port or '(none)'} is not {port or '(none)'}"
        if len(labels) != len(self.host_labels):
            return f"host has {len(self.host_labels)} label(s), {host} has {len(labels)}"
        for pattern, label in zip(self.host_labels, labels, strict=True):
            if ":" in pattern:  # an IPv6 literal, whose brackets are not a glob class
                matched = pattern == label
            else:
                matched = fnmatch.fnmatchcase(label, pattern.replace("[^", "[!"))
            if not matched:
                return f"host label {pattern!r} does not match {label!r}"
        return None


def _split_host(host: str) -> tuple[tuple[str, ...], str]:
    """Labels and port of ``host[:port]`` (an IPv6 literal is one label)."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        return (host[: end + 1],), rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return tuple(name.split(".")), port


def _parse_hostname(variable: str, value: str) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """Normalise a HOSTNAME value the imgpkg way, rejecting what can never match."""

    def bad(problem: str) -> CredentialError:
        return CredentialError(f"{variable}={value!r} {problem}", hint=_HINT)

    text = value.strip()
    if not text:
        raise CredentialError(f"{variable} is empty", hint=_HINT)
    scheme_match = _SCHEME_RE.match(text)
    if scheme_match:
        if scheme_match.group(1).lower() not in ("http", "https"):
            raise bad(f"has scheme {scheme_match.group(1)!r}; only http and https mean anything")
        text = text[scheme_match.end() :]
    authority, slash, path = text.partition("/")
    path = slash + path
    if "?" in text or "#" in text or "@" in authority:
        raise bad("carries user info, a query or a fragment")
    if "%" in authority:
        raise bad("has a %-escape in the host; write the host as it is")
    port = ""
    if authority.startswith("["):
        literal, _, after = authority[1:].partition("]")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise bad(f"has an invalid IPv6 address {literal!r}") from None
        if after and not after.startswith(":"):
            raise bad("has text after the IPv6 address")
        port = after[1:]
        labels: tuple[str, ...] = (f"[{literal.lower()}]",)
    else:
        host, colon, port = authority.partition(":")
        if colon and not port:
            raise bad("has an empty port")
        host = host.lower()
        if not host:
            raise bad("has no host")
        labels = tuple(host.split("."))
        for label in labels:
            if not _HOST_LABEL_RE.fullmatch(label):
                raise bad(f"has host label {label!r}, which is not a DNS label or glob")
            if label.count("[") != label.count("]"):
                raise bad(f"has unbalanced [ ] in {label!r}")
        if not any(_GLOB_CHARS & set(host)):
            labels = tuple(canonical_registry(host).split("."))
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise bad(f"has port {port!r}; a port is a number from 1 to 65535 (never a glob)")
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    segments = tuple(s for s in path.split("/") if s)
    if any(_GLOB_CHARS & set(s) for s in segments):
        raise CredentialError(
            f"{variable}={value!r}: wildcards are only allowed in the host, not the path",
            hint=_HINT,
        )
    return labels, port, segments


def _split_name(name: str) -> tuple[str, str, str] | None:
    """(prefix, field, suffix) of an entry variable, or None when the name is not one."""
    for prefix in PREFIXES:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        for field in FIELDS:
            if rest == field:
                return prefix, field, ""
            if rest.startswith(field + "_") and _SUFFIX_RE.fullmatch(rest[len(field) + 1 :]):
                return prefix, field, rest[len(field) + 1 :]
        return prefix, "", rest
    return None


def parse_entries(environ: Mapping[str, str]) -> list[EnvEntry]:
    """Collect the entries in ``environ``, most specific first; errors name the variable."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for name in sorted(environ):
        split = _split_name(name)
        if split is None or name in _NOT_ENTRIES:
            continue
        prefix, field, suffix = split
        if not field:
            raise CredentialError(
                f"unknown variable {name}",
                hint=f"{prefix}<FIELD>[_<suffix>] takes FIELD in {', '.join(FIELDS)} and an "
                "alphanumeric suffix",
            )
        groups.setdefault((prefix, suffix), {})[field] = environ[name]

    entries: list[EnvEntry] = []
    # IMGCTL_CREDS_ entries come before IMGPKG_REGISTRY_ ones of equal specificity.
    ordered = sorted(groups, key=lambda k: (PREFIXES.index(k[0]), k[1]))
    for order, (prefix, suffix) in enumerate(ordered):
        fields = groups[(prefix, suffix)]

        def var(field: str, prefix: str = prefix, suffix: str = suffix) -> str:
            return f"{prefix}{field}{'_' + suffix if suffix else ''}"

        if "HOSTNAME" not in fields:
            given = ", ".join(var(f) for f in fields)
            raise CredentialError(
                f"{given} set without {var('HOSTNAME')}",
                hint=f"set {var('HOSTNAME')} to the registry these credentials are for",
            )
        username, password = fields.get("USERNAME"), fields.get("PASSWORD")
        if (username is None) != (password is None):
            missing = var("PASSWORD") if password is None else var("USERNAME")
            raise CredentialError(
                f"{missing} is missing for {var('HOSTNAME')}",
                hint="give USERNAME and PASSWORD together",
            )
        credential = Credential(
            username=username,
            password=password,
            identity_token=fields.get("IDENTITY_TOKEN") or None,
            registry_token=fields.get("REGISTRY_TOKEN") or None,
        )
        if credential.anonymous:
            raise CredentialError(
                f"{var('HOSTNAME')} has no credentials",
                hint=f"set {var('USERNAME')}/{var('PASSWORD')}, {var('IDENTITY_TOKEN')} or "
                f"{var('REGISTRY_TOKEN')}",
            )
        labels, port, path = _parse_hostname(var("HOSTNAME"), fields["HOSTNAME"])
        entries.append(
            EnvEntry(var("HOSTNAME"), fields["HOSTNAME"], labels, port, path, credential, order)
        )
    entries.sort(key=EnvEntry.sort_key)
    return entries


class EnvKeychain(SourceKeychain):
    """Credentials from ``IMGCTL_CREDS_*`` and ``IMGPKG_REGISTRY_*`` entries."""

    name = "env"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.entries = parse_entries(environ)

    async def explain(self, registry: str, repository: str) -> Resolution:
        """The most specific entry that covers ``registry/repository``."""
        if not self.entries:
            return Resolution(
                ANONYMOUS, self.name, "no IMGCTL_CREDS_* or IMGPKG_REGISTRY_* entries"
            )
        misses: list[str] = []
        for entry in self.entries:
            why = entry.mismatch(registry, repository)
            if why is None:
                return Resolution(
                    entry.credential, self.name, f"{entry.variable}={entry.hostname!r} matches"
                )
            misses.append(f"{entry.variable}={entry.hostname!r}: {why}")
        return Resolution(ANONYMOUS, self.name, "no entry matches (" + "; ".join(misses) + ")")
