"""The keychain interface: credentials, the sources that give them, and why they answered.

A ``Keychain`` resolves a registry host and repository to a ``Credential``, the way
go-containerregistry's ``authn.Keychain`` resolves a resource to an authenticator. The client
asks once per (host, repository) and caches the answer for its lifetime.

The keychains imgctl ships also *explain* themselves: ``explain`` returns a ``Resolution`` that
names the source and says why it answered (or did not), never the secret. ``imgctl auth
explain`` prints these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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
    "Resolution",
    "SourceKeychain",
    "StaticKeychain",
]


@dataclass(frozen=True, slots=True)
class Credential:
    """What to present to a registry; every field empty means anonymous.

    ``identity_token`` is an OAuth2 refresh token traded at the registry's token server;
    ``registry_token`` is a bearer token sent as is.
    """

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    @property
    def anonymous(self) -> bool:
        """True when there is nothing to present."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @property
    def kind(self) -> str:
        """``anonymous``, ``basic``, ``identity-token`` or ``registry-token``."""
        if self.registry_token:
            return "registry-token"
        if self.identity_token:
            return "identity-token"
        if self.username or self.password:
            return "basic"
        return "anonymous"

    def describe(self) -> str:
        """What kind of credential this is, without the secret (the username is not secret)."""
        if self.kind == "basic":
            return f"basic, user {self.username!r}"
        return self.kind

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback through repr().
        return f"Credential({self.describe()})"


ANONYMOUS = Credential()


@dataclass(frozen=True, slots=True)
class Resolution:
    """A keychain's answer: the credential, which source gave it, and why (never the secret)."""

    credential: Credential
    source: str
    detail: str

    @property
    def found(self) -> bool:
        """True when the source supplied a credential."""
        return not self.credential.anonymous


@runtime_checkable
class Keychain(Protocol):
    """Resolves credentials for a repository on a registry."""

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return the credential to use, or ANONYMOUS."""
        ...


class SourceKeychain(ABC):
    """A keychain that can say why it answered as it did; ``name`` labels it in explanations."""

    name: str = "keychain"

    @abstractmethod
    async def explain(self, registry: str, repository: str) -> Resolution:
        """Resolve and say why (``detail``); anonymous when this source has nothing."""

    async def resolve(self, registry: str, repository: str) -> Credential:
        """Return the credential to use, or ANONYMOUS."""
        return (await self.explain(registry, repository)).credential


class AnonymousKeychain(SourceKeychain):
    """Always anonymous."""

    name = "anonymous"

    async def explain(self, registry: str, repository: str) -> Resolution:
        """Answer anonymous."""
        return Resolution(ANONYMOUS, self.name, "anonymous access")


class StaticKeychain(SourceKeychain):
    """One credential, for every registry or only for the hosts listed."""

    def __init__(
        self,
        credential: Credential,
        hosts: Iterable[str] | None = None,
        *,
        name: str = "static",
        origin: str = "given credential",
    ) -> None:
        self._credential = credential
        self._hosts = None if hosts is None else {canonical_registry(h) for h in hosts}
        self.name = name
        self._origin = origin

    async def explain(self, registry: str, repository: str) -> Resolution:
        """Return the credential when the host matches."""
        if self._hosts is None or canonical_registry(registry) in self._hosts:
            return Resolution(self._credential, self.name, self._origin)
        return Resolution(ANONYMOUS, self.name, f"{self._origin} is not for {registry}")


class MultiKeychain(SourceKeychain):
    """Tries keychains in order; the first non-anonymous answer wins."""

    name = "multi"

    def __init__(self, *keychains: Keychain) -> None:
        self.keychains = keychains

    async def explain_all(self, registry: str, repository: str) -> list[Resolution]:
        """Every source's answer in order, stopping after the first that supplied credentials."""
        answers: list[Resolution] = []
        for keychain in self.keychains:
            if isinstance(keychain, SourceKeychain):
                answer = await keychain.explain(registry, repository)
            else:
                credential = await keychain.resolve(registry, repository)
                answer = Resolution(credential, type(keychain).__name__, "custom keychain")
            answers.append(answer)
            if answer.found:
                break
        return answers

    async def explain(self, registry: str, repository: str) -> Resolution:
        """The first source with credentials, else anonymous."""
        answers = await self.explain_all(registry, repository)
        if answers and answers[-1].found:
            return answers[-1]
        return Resolution(ANONYMOUS, self.name, "no source has credentials; anonymous access")
