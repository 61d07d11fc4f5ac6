"""Image references: the distribution grammar, Docker Hub normalisation, canonical strings.

``Reference.parse("alpine")`` is ``docker.io/library/alpine`` with no tag; ``str()`` of a
reference is its canonical form, and ``familiar`` the short form Docker prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from imgctl.errors import InvalidDigestError, InvalidReferenceError
from imgctl.oci.digest import Digest

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "Reference",
    "canonical_registry",
    "valid_repository",
    "valid_tag",
]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# distribution/reference v0.6.0: the limit applies to the repository path (after Docker Hub
# normalisation, so "library/" counts), never to the registry host.
NAME_TOTAL_LENGTH_MAX = 255
REGISTRY_HOST_LENGTH_MAX = 253

# Grammar of github.com/distribution/reference (regexp.go), written out here.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT_RE = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_ANCHORED_HEX64_RE = re.compile(r"[a-f0-9]{64}")
# The characters str.isspace() accepts (re's \s is defined by the same test), found in one C
# scan: a generator over every character was a sixth of an admission decision's time.
_WHITESPACE_RE = re.compile(r"\s")

_LEGACY_DEFAULT_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})


def canonical_registry(host: str) -> str:
    """Normalise a registry host: Docker Hub's aliases all become ``docker.io``."""
    lowered = host.lower()
    if lowered in _LEGACY_DEFAULT_REGISTRIES or lowered == DEFAULT_REGISTRY:
        return DEFAULT_REGISTRY
    return host


def valid_repository(path: str) -> bool:
    """True for a repository path of the grammar (``library/alpine``), within the length limit.

    The path alone, as a registry's API names it: no registry host, no Docker Hub normalisation.
    """
    return len(path) <= NAME_TOTAL_LENGTH_MAX and all(
        _PATH_COMPONENT_RE.fullmatch(component) for component in path.split("/")
    )


def valid_tag(tag: str) -> bool:
    """True for a tag of the grammar: up to 128 of ``[A-Za-z0-9_.-]``, not starting with . or -."""
    return _TAG_RE.fullmatch(tag) is not None


def _split_registry(name: str) -> tuple[str, str]:
    """Split ``name`` into registry and remainder the way Docker does."""
    first, slash, rest = name.partition("/")
    if not slash or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        registry, remainder = DEFAULT_REGISTRY, name
    else:
        registry, remainder = first, rest
    registry = canonical_registry(registry)
    if registry == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = f"library/{remainder}"
    return registry, remainder


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, canonical image reference: registry, repository, and an optional tag/digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, value: str) -> Reference:
        """Parse a reference; raise InvalidReferenceError naming the part that is wrong."""
        if not isinstance(value, str) or not value:
            raise InvalidReferenceError(str(value), "reference", "is empty")
        if _WHITESPACE_RE.search(value) is not None:
            raise InvalidReferenceError(value, "reference", "contains whitespace")
        if "://" in value:
            raise InvalidReferenceError(
                value, "reference", "has a URL scheme", hint="drop the http:// or https:// prefix"
            )

        if _ANCHORED_HEX64_RE.fullmatch(value):
            raise InvalidReferenceError(
                value,
                "repository",
                "is a 64-character hex string, which is an image id, not a name",
            )
        name, at, digest_part = value.partition("@")
        digest: Digest | None = None
        if at:
            try:
                digest = Digest.parse(digest_part)
            except InvalidDigestError as exc:
                raise InvalidReferenceError(
                    value, "digest", exc.message.split(": ", 1)[-1], hint=exc.hint
                ) from None

        tag: str | None = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise InvalidReferenceError(
                    value,
                    "tag",
                    f"{tag!r} is invalid",
                    hint="a tag is 1-128 characters of [A-Za-z0-9_.-] and cannot start with . or -",
                )

        if not name:
            raise InvalidReferenceError(value, "repository", "is empty")
        registry, repository = _split_registry(name)
        _check_registry(value, registry)
        _check_repository(value, repository)
        if len(repository) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReferenceError(
                value,
                "repository",
                f"path {repository} is {len(repository)} characters long;"
                f" the limit is {NAME_TOTAL_LENGTH_MAX}",
                hint="shorten the repository path; the registry host does not count",
            )
        return cls(registry, repository, tag, digest)

    @classmethod
    def parse_repository(cls, value: str) -> Reference:
        """Parse a repository name that must carry neither tag nor digest."""
        ref = cls.parse(value)
        if ref.tag is not None or ref.digest is not None:
            raise InvalidReferenceError(
                value,
                "reference",
                "names a tag or digest where a repository was expected",
                hint=f"use {ref.name}",
            )
        return ref

    @property
    def name(self) -> str:
        """Registry and repository: ``docker.io/library/alpine``."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest if known, else the tag (default latest)."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``alpine:3.20`` for ``docker.io/library/alpine:3.20``."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository.removeprefix("library/")
            if "/" in name:
                name = self.repository
        return name + self._suffix()

    def with_tag(self, tag: str | None) -> Reference:
        """Same repository, another tag (digest dropped)."""
        if tag is not None and not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"{self.name}:{tag}", "tag", f"{tag!r} is invalid")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest | None) -> Reference:
        """Same repository, pinned to ``digest`` (tag dropped)."""
        return replace(self, tag=None, digest=digest)

    def in_repository(self, registry: str, repository: str) -> Reference:
        """Same tag and digest in another repository."""
        name = Reference.parse_repository(f"{registry}/{repository}")
        return replace(self, registry=name.registry, repository=name.repository)

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag is not None else ""
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()


def _check_registry(value: str, registry: str) -> None:
    host = registry if registry.endswith("]") else registry.partition(":")[0]
    # distribution/reference has no limit here; DNS names have at most 253 characters, and with
    # the path's limit this bounds a whole name (registry, port, path) to 515 characters.
    if len(host) > REGISTRY_HOST_LENGTH_MAX:
        raise InvalidReferenceError(
            value,
            "registry",
            f"host is {len(host)} characters long; the limit is {REGISTRY_HOST_LENGTH_MAX}",
            hint="a DNS name has at most 253 characters",
        )
    if not _DOMAIN_RE.fullmatch(registry):
        raise InvalidReferenceError(value, "registry", f"{registry!r} is not a valid host[:port]")
    if not registry.endswith("]") and ":" in registry:
        port = registry.rpartition(":")[2]
        if len(port) > 5 or int(port) > 65535:
            raise InvalidReferenceError(value, "registry", f"port {port} is out of range")


def _check_repository(value: str, repository: str) -> None:
    if not repository:
        raise InvalidReferenceError(value, "repository", "is empty")
    if repository.lower() != repository:
        raise InvalidReferenceError(value, "repository", f"{repository!r} must be lowercase")
    for component in repository.split("/"):
        if not component:
            raise InvalidReferenceError(
                value, "repository", f"{repository!r} has an empty path component"
            )
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise InvalidReferenceError(
                value,
                "repository",
                f"path component {component!r} is invalid",
                hint="use lowercase letters and digits, separated by '.', '_', '__' or '-'",
            )
