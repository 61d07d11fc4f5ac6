"""Where registry credentials come from.

A ``Keychain`` resolves a registry host and repository to a ``Credential``, the way
go-containerregistry's ``authn.Keychain`` resolves a resource to an authenticator. The client
asks once per (host, repository) and caches the answer for its lifetime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imgctl.oci.reference import canonical_registry

__all__ = [
    "ANONYMOUS",
    "AnonymousKeychain",
    "Credential",
    "Keychain",
    "MultiKeychain",
    "StaticKeychain",
]


@dataclass(frozen=True, slots=True)
class Credential:
    """What to present to a registry; every field empty means anonymous."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    @property
    def anonymous(self) -> bool:
        """True when there is nothing to present."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback through repr().
        kind = "anonymous"
        if self.registry_token:
            kind = "registry-token"
        elif self.identity_token:
            kind = "identity-token"
        elif self.username:
            kind = f"basic user={self.username!r}"
        return f"Credential({kind})"


ANONYMOUS = Credential()


@runtime_checkable
class Keychain(Protocol):
    """Resolves credentials for a repository on a registry."""

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return the credential to use, or ANONYMOUS."""
        ...


class AnonymousKeychain:
    """Always anonymous."""

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return ANONYMOUS."""
        return ANONYMOUS


class StaticKeychain:
    """One credential, for every registry or only for the hosts listed."""

    def __init__(self, credential: Credential, hosts: Iterable[str] | None = None) -> None:
        self._credential = credential
        self._hosts = None if hosts is None else {canonical_registry(h) for h in hosts}

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return the credential when the host matches."""
        if self._hosts is None or canonical_registry(registry) in self._hosts:
            return self._credential
        return ANONYMOUS


class MultiKeychain:
    """Tries keychains in order; the first non-anonymous answer wins."""

    def __init__(self, *keychains: Keychain) -> None:
        self._keychains = keychains

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return the first non-anonymous credential, else ANONYMOUS."""
        for keychain in self._keychains:
            credential = await keychain.resolve(registry, repository)
            if not credential.anonymous:
                return credential
        return ANONYMOUS
