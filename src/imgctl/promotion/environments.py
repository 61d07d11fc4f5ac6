"""Environments (dev, int, prod...) and who may promote into each.

The server reads ``IMGCTL_REGISTRY_<NAME>`` (a registry host, optionally with a repository
prefix: ``registry.example.com/prod``) and ``IMGCTL_SPA_<NAME>`` (the S3 bucket suffix for SPA
bundles). Names are case-insensitive: ``--destination prod`` finds ``IMGCTL_REGISTRY_PROD``.

An optional policy file narrows who may promote where::

    destinations:
      prod: [ops@example.com]
      int: [engineering@example.com, ops@example.com]

A destination listed there needs one of its groups (on top of ``OIDC_ALLOWED_GROUPS``); one not
listed is open to every allowed caller. ``require_signature`` makes a destination accept only
images whose source carries a valid signature (kpromo's validate phase)::

    require_signature:
      prod:
        keys: [release.pub]              # key references; relative paths: from the file's directory
        keyless:                         # and/or Fulcio identities (cosign --certificate-identity)
          - {identity: release@example.com, issuer: https://accounts.example.com}
        trusted_root: trusted_root.json  # keyless: sigstore's Fulcio roots and Rekor keys
        identities: [dev.example.com/team/app]  # optional: repositories a payload may name

``provenance`` checks the SLSA provenance attestations of a destination's sources (kpromo's
provenance phase) with the same keys, keyless identities and trusted_root::

    provenance:
      prod: {keys: [builder.pub], required: true}   # required: false (default) = verify-if-present

Key references are only read here; ``imgctl.promotion.signing`` loads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imgctl.errors import ImgctlError, UsageError

if TYPE_CHECKING:
    from imgctl._internal.strict_yaml import Document

__all__ = [
    "Environment",
    "Environments",
    "Policy",
    "ProvenanceRule",
    "SignatureRule",
    "load_policy",
]

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
        """Read ``IMGCTL_REGISTRY_<NAME>`` and ``IMGCTL_SPA_<NAME>``; errors name the variable.

        Every bad variable is reported (one ConfigurationError when there are several).
        """
        from imgctl.config import Problems

        registries: dict[str, tuple[str, str]] = {}
        suffixes: dict[str, str] = {}
        problems = Problems()
        for variable, value in sorted(environ.items()):
            for prefix in (_REGISTRY_PREFIX, _SPA_PREFIX):
                # Variable names are case-sensitive; only IMGCTL_..., so two spellings of one
                # environment cannot silently override each other.
                if not variable.startswith(prefix):
                    continue
                name = variable[len(prefix) :]
                if not _NAME_RE.fullmatch(name):
                    problems.add(
                        UsageError(
                            f"{variable}: environment name {name!r} must be letters, digits and _",
                            hint="rename the variable",
                        )
                    )
                    continue
                if prefix == _REGISTRY_PREFIX:
                    registry = problems.check(lambda: _parse_registry(variable, value))  # noqa: B023
                    if registry is not None:
                        registries[name.lower()] = registry
                else:
                    suffix = value.strip()
                    if not suffix:
                        problems.add(
                            UsageError(f"{variable} is empty", hint="set the bucket suffix")
                        )
                        continue
                    suffixes[name.lower()] = suffix
        problems.raise_any()
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
class SignatureRule:
    """What a source image must carry to be promoted into one destination: a valid signature.

    ``keys`` are key references (files, KMS URIs); ``keyless`` (identity, issuer) pairs of
    Fulcio certificates, checked offline against ``trusted_root`` (a sigstore trusted_root.json);
    ``identities`` the repositories a payload may name (empty: the source's own). One signature
    verified by any key or identity is enough.
    """

    keys: tuple[str, ...] = ()
    keyless: tuple[tuple[str, str], ...] = ()
    identities: tuple[str, ...] = ()
    trusted_root: str | None = None


@dataclass(frozen=True, slots=True)
class ProvenanceRule:
    """How one destination checks its sources' attestations (the policy file's ``provenance``).

    ``keys``, ``keyless`` and ``trusted_root`` as in :class:`SignatureRule`. Every attestation a
    source carries must verify; ``required`` also refuses a source without a verified SLSA
    provenance (false: verify-if-present, a source without any is promoted with a warning).
    """

    keys: tuple[str, ...] = ()
    keyless: tuple[tuple[str, str], ...] = ()
    trusted_root: str | None = None
    required: bool = False

    @property
    def identities(self) -> tuple[str, ...]:
        """No payload identities: an attestation names its subject by digest."""
        return ()


@dataclass(frozen=True, slots=True)
class Policy:
    """Which groups may promote into which destination; empty means no extra rule."""

    destinations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    path: str | None = None
    # Destination environment -> the signature its images need at the source.
    signatures: Mapping[str, SignatureRule] = field(default_factory=dict)
    # Destination environment -> how its sources' attestations are checked.
    provenance: Mapping[str, ProvenanceRule] = field(default_factory=dict)

    def provenance_rule(self, destination: str) -> ProvenanceRule | None:
        """The provenance rule of ``destination``, if it has one."""
        return self.provenance.get(destination.lower())

    def signature_rule(self, destination: str) -> SignatureRule | None:
        """The signature rule of ``destination``, if it has one."""
        return self.signatures.get(destination.lower())

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
    known = {"destinations", "require_signature", "provenance"}
    if not isinstance(document, dict) or set(document) - known:
        detail = ""
        if isinstance(document, dict):
            unknown = sorted(map(str, set(document) - known))
            if unknown:
                detail = f" (unknown: {', '.join(k + loaded.key_at(document, k) for k in unknown)})"
        raise UsageError(
            f"policy file {path} must be a mapping with the keys destinations, "
            f"require_signature and/or provenance{detail}",
            hint="destinations: {prod: [group, ...], ...}; require_signature: {prod: {keys: "
            "[cosign.pub]}}; provenance: {prod: {keys: [builder.pub], required: true}}",
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
    signatures = _signature_rules(path, loaded, document.get("require_signature"), environments)
    provenance = _provenance_rules(path, loaded, document.get("provenance"), environments)
    return Policy(destinations, str(path), signatures, provenance)


def _rules(
    path: Path, loaded: Document, raw: object, environments: Environments, section: str
) -> Iterator[tuple[str, str, dict[object, object]]]:
    """Each (environment, where, body) of a section mapping environments to rule mappings."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise UsageError(
            f"{path}{loaded.at(raw)}: {section} must map environment names to rules",
            hint=f"{section}: {{prod: {{keys: [cosign.pub]}}}}",
        )
    seen: set[str] = set()
    for name, body in raw.items():
        environment = environments.get(name) if isinstance(name, str) else None
        if environment is None:
            raise UsageError(
                f"{path}: {section} names {name!r}, which is not a configured environment",
                hint=f"configured: {', '.join(environments.names()) or 'none'}",
            )
        if environment.name in seen:
            raise UsageError(f"{path}: {section} names {environment.name} again")
        seen.add(environment.name)
        yield environment.name, f"{section}.{name}", body


def _checked_body(
    path: Path, loaded: Document, body: object, where: str, fields: tuple[str, ...]
) -> dict[object, object]:
    """``body`` when it is a mapping of ``fields`` only; UsageError naming the others."""
    if not isinstance(body, dict) or set(body) - set(fields):
        unknown = sorted(map(str, set(body) - set(fields))) if isinstance(body, dict) else []
        detail = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise UsageError(
            f"{path}{loaded.at(body)}: {where} must be a mapping of "
            f"{', '.join(fields[:-1])} and {fields[-1]}{detail}",
            hint="keys: [cosign.pub] and/or keyless: [{identity: ..., issuer: ...}]",
        )
    return body


def _trust(
    path: Path, loaded: Document, body: dict[object, object], where: str, what: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str | None]:
    """A rule's keys (beside the file), keyless pairs and trusted_root, checked together."""
    keys = _strings(path, loaded, body.get("keys"), f"{where}.keys")
    keyless = _keyless(path, loaded, body.get("keyless"), f"{where}.keyless")
    if not keys and not keyless:
        raise UsageError(
            f"{path}{loaded.at(body)}: {where} names no key and no keyless identity: "
            f"no {what} could ever satisfy it",
            hint="give keys: [...] or keyless: [{identity: ..., issuer: ...}]",
        )
    root = body.get("trusted_root")
    if root is not None and (not isinstance(root, str) or not root.strip()):
        raise UsageError(f"{path}{loaded.at(root)}: {where}.trusted_root must be a file name")
    if keyless and root is None:
        raise UsageError(
            f"{path}{loaded.at(body)}: {where}.keyless needs trusted_root: the sigstore "
            "trusted_root.json whose Fulcio roots and Rekor keys vouch for the certificates",
        )
    return (
        tuple(_beside(path, key) for key in keys),
        keyless,
        _beside(path, root.strip()) if isinstance(root, str) else None,
    )


def _signature_rules(
    path: Path, loaded: Document, raw: object, environments: Environments
) -> dict[str, SignatureRule]:
    """``require_signature``: environment -> {keys, keyless, identities}, read strictly."""
    rules: dict[str, SignatureRule] = {}
    fields = ("keys", "keyless", "trusted_root", "identities")
    for environment, where, raw_body in _rules(
        path, loaded, raw, environments, "require_signature"
    ):
        body = _checked_body(path, loaded, raw_body, where, fields)
        keys, keyless, root = _trust(path, loaded, body, where, "signature")
        identities = _strings(path, loaded, body.get("identities"), f"{where}.identities")
        rules[environment] = SignatureRule(keys, keyless, identities, root)
    return rules


def _provenance_rules(
    path: Path, loaded: Document, raw: object, environments: Environments
) -> dict[str, ProvenanceRule]:
    """``provenance``: environment -> {keys, keyless, trusted_root, required}, read strictly."""
    rules: dict[str, ProvenanceRule] = {}
    fields = ("keys", "keyless", "trusted_root", "required")
    for environment, where, raw_body in _rules(path, loaded, raw, environments, "provenance"):
        body = _checked_body(path, loaded, raw_body, where, fields)
        keys, keyless, root = _trust(path, loaded, body, where, "attestation")
        required = body.get("required", False)
        if not isinstance(required, bool):
            raise UsageError(
                f"{path}{loaded.at(required)}: {where}.required must be true or false",
                hint="true refuses sources without a verified SLSA provenance",
            )
        rules[environment] = ProvenanceRule(keys, keyless, root, required)
    return rules


def _strings(path: Path, loaded: Document, value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{path}{loaded.at(value)}: {where} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _keyless(
    path: Path, loaded: Document, value: object, where: str
) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    shape = f"{where} must be a list of {{identity: ..., issuer: ...}} mappings"
    if not isinstance(value, list):
        raise UsageError(f"{path}{loaded.at(value)}: {shape}")
    pairs = []
    for entry in value:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"identity", "issuer"}
            or not all(isinstance(v, str) and v.strip() for v in entry.values())
        ):
            raise UsageError(
                f"{path}{loaded.at(entry)}: {shape} (both non-empty strings, nothing else)"
            )
        pairs.append((entry["identity"].strip(), entry["issuer"].strip()))
    return tuple(pairs)


def _beside(path: Path, key: str) -> str:
    """A relative key file is found next to the policy file, not in the server's directory."""
    if "://" in key or Path(key).is_absolute():
        return key
    return str(path.parent / key)
