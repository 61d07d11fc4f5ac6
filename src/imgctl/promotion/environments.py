"""Environments (dev, int, prod...) and who may promote into each.

The server reads ``IMGCTL_REGISTRY_<NAME>`` (a registry host, optionally with a repository
prefix: ``registry.example.com/prod``) and ``IMGCTL_SPA_<NAME>`` (the S3 bucket suffix for SPA
bundles). Names are case-insensitive: ``--destination prod`` finds ``IMGCTL_REGISTRY_PROD``.

An optional policy file narrows who may promote where::

    destinations:
      prod: [ops@example.com]
      int: [engineering@example.com, ops@example.com]

A destination listed there needs one of its groups (on top of ``OIDC_ALLOWED_GROUPS``); one not
listed is open to every allowed caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgctl.errors import ImgctlError, UsageError

__all__ = ["Environment", "Environments", "Policy", "load_policy"]

_NAME_RE = re.compile(r"[A-Z0-9][A-Z0-9_]*")
_REGISTRY_PREFIX = "IMGCTL_REGISTRY_"
_SPA_PREFIX = "IMGCTL_SPA_"
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Environment:
    """One named environment: its registry (host and prefix) and SPA bucket suffix."""

    name: str  # lower case
    registry: str | None = None  # host[:port]
    prefix: str = ""  # repository path prefix, no slashes at the ends
    spa_suffix: str | None = None

    def repository(self, path: str) -> str:
        """The repository ``path`` lives at in this environment."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def describe(self) -> str:
        """``host/prefix`` as configured."""
        if not self.registry:
            return ""
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry


class Environments:
    """All configured environments, looked up case-insensitively."""

    def __init__(self, environments: Iterable[Environment]) -> None:
        self._by_name = {e.name: e for e in environments}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Environments:
        """Read ``IMGCTL_REGISTRY_<NAME>`` and ``IMGCTL_SPA_<NAME>``; errors name the variable."""
        registries: dict[str, tuple[str, str]] = {}
        suffixes: dict[str, str] = {}
        for variable, value in environ.items():
            for prefix in (_REGISTRY_PREFIX, _SPA_PREFIX):
                # Variable names are case-sensitive; only IMGCTL_..., so two spellings of one
                # environment cannot silently override each other.
                if not variable.startswith(prefix):
                    continue
                name = variable[len(prefix) :]
                if not _NAME_RE.fullmatch(name):
                    raise UsageError(
                        f"{variable}: environment name {name!r} must be letters, digits and _"
                    )
                if prefix == _REGISTRY_PREFIX:
                    registries[name.lower()] = _parse_registry(variable, value)
                else:
                    suffix = value.strip()
                    if not suffix:
                        raise UsageError(f"{variable} is empty", hint="set the bucket suffix")
                    suffixes[name.lower()] = suffix
        names = sorted(set(registries) | set(suffixes))
        return cls(
            Environment(
                name,
                registries.get(name, (None, ""))[0],
                registries.get(name, (None, ""))[1],
                suffixes.get(name),
            )
            for name in names
        )

    def get(self, name: str) -> Environment | None:
        """The environment called ``name`` (any case), or None."""
        return self._by_name.get(name.strip().lower())

    def names(self) -> list[str]:
        """Every environment name, sorted."""
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[Environment]:
        return iter([self._by_name[name] for name in self.names()])

    def __len__(self) -> int:
        return len(self._by_name)


def _parse_registry(variable: str, value: str) -> tuple[str, str]:
    """``host[:port][/prefix]`` -> (host, prefix), checked against the reference grammar."""
    from imgctl.oci import Reference
    from imgctl.oci.reference import canonical_registry

    text = value.strip().rstrip("/")
    if "://" in text:
        raise UsageError(f"{variable}={value!r} has a URL scheme", hint="give host[:port][/prefix]")
    host, _, prefix = text.partition("/")
    if not host:
        raise UsageError(
            f"{variable} is empty", hint="give the registry host, e.g. registry.example.com"
        )
    try:
        probe = Reference.parse(f"{host}/probe")
    except ImgctlError as exc:
        raise UsageError(f"{variable}={value!r}: {exc.message}") from None
    if probe.registry.lower() != canonical_registry(host).lower():
        raise UsageError(
            f"{variable}={value!r}: {host!r} is not a registry host",
            hint="a registry host has a dot or a port, or is localhost",
        )
    for component in prefix.split("/") if prefix else []:
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise UsageError(
                f"{variable}={value!r}: repository prefix component {component!r} is not valid",
                hint="lowercase letters, digits and . _ - separators",
            )
    return probe.registry, prefix


@dataclass(frozen=True, slots=True)
class Policy:
    """Which groups may promote into which destination; empty means no extra rule."""

    destinations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    path: str | None = None

    def groups_for(self, destination: str) -> tuple[str, ...]:
        """The groups allowed into ``destination``; empty: every allowed caller."""
        return self.destinations.get(destination.lower(), ())

    def allows(self, groups: Iterable[str], destination: str) -> bool:
        """True when a caller in ``groups`` may promote into ``destination``."""
        needed = self.groups_for(destination)
        return not needed or bool(set(needed) & set(groups))


def load_policy(path: Path, environments: Environments) -> Policy:
    """Read a policy file; unknown environments, bad shapes and ambiguity are errors naming it.

    The file is read with imgctl's strict YAML: two entries for one environment, whatever
    their spelling (``prod`` / ``PROD`` / ``"prod "``), are refused with both lines.
    """
    from imgctl._internal import strict_yaml

    loaded = strict_yaml.load_file(path, "policy file")
    document = loaded.data
    if not isinstance(document, dict) or set(document) - {"destinations"}:
        detail = ""
        if isinstance(document, dict):
            unknown = sorted(map(str, set(document) - {"destinations"}))
            detail = f" (unknown: {', '.join(k + loaded.key_at(document, k) for k in unknown)})"
        raise UsageError(
            f"policy file {path} must be a mapping with one key, destinations{detail}",
            hint="destinations: {prod: [group, ...], ...}",
        )
    raw = document.get("destinations") or {}
    if not isinstance(raw, dict):
        raise UsageError(
            f"{path}{loaded.at(raw)}: destinations must map environment names to lists of groups"
        )
    destinations: dict[str, tuple[str, ...]] = {}
    for name, groups in raw.items():
        environment = environments.get(name) if isinstance(name, str) else None
        if environment is None:
            raise UsageError(
                f"{path}: destination {name!r} is not a configured environment",
                hint=f"configured: {', '.join(environments.names()) or 'none'}",
            )
        if (
            not isinstance(groups, list)
            or not groups
            or not all(isinstance(g, str) and g for g in groups)
        ):
            raise UsageError(
                f"{path}{loaded.at(groups)}: destinations.{name} must be a non-empty list of"
                " groups (strings)"
            )
        # Keyed by the environment's own name: the rule must be found whatever the spelling
        # in the file (" prod" used to be stored apart from "prod", leaving prod open).
        if environment.name in destinations:
            raise UsageError(f"{path}: destination {name!r} names {environment.name} again")
        destinations[environment.name] = tuple(groups)
    return Policy(destinations, str(path))
