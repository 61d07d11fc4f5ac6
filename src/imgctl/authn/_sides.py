"""Credentials given for one side of a copy: skopeo's ``--src-creds`` and ``--dest-creds``.

``imgctl copy --src-creds USER[:PASS]`` holds for the source repositories of the run and
``--dest-creds`` for the destination ones, before every other source of the keychain; any
other repository (a mount's source on the destination registry, say) asks the keychain as
usual. A repository that is both a source and a destination in one run takes
``--dest-creds``: it is written to.
"""

from __future__ import annotations

from collections.abc import Iterable

from imgctl.authn._keychain import Credential, Keychain, Resolution, SourceKeychain
from imgctl.errors import UsageError
from imgctl.oci.reference import canonical_registry

__all__ = ["SideKeychain", "split_creds"]


def split_creds(flag: str, value: str) -> tuple[str, str | None]:
    """``USER[:PASS]`` (skopeo's form) as (user, password or None when not given)."""
    user, colon, password = value.partition(":")
    if not user:
        raise UsageError(
            f"{flag} {value!r} has no user name",
            hint=f"give {flag} USER[:PASSWORD]",
        )
    return user, password if colon else None


class SideKeychain(SourceKeychain):
    """Credentials for given repositories first, then ``fallback`` for the rest."""

    name = "flags"

    def __init__(
        self, sides: Iterable[tuple[str, str, Credential, str]], fallback: Keychain
    ) -> None:
        # (registry, repository) -> (credential, the flag that gave it); later entries win,
        # so the destination's (listed last) holds for a repository on both sides.
        self._sides = {
            (canonical_registry(registry), repository): (credential, flag)
            for registry, repository, credential, flag in sides
        }
        self.fallback = fallback

    async def explain(self, registry: str, repository: str) -> Resolution:
        """The side's credential for its repositories, else the fallback's answer."""
        side = self._sides.get((canonical_registry(registry), repository))
        if side is not None:
            credential, flag = side
            return Resolution(credential, self.name, f"{flag} for {registry}/{repository}")
        if isinstance(self.fallback, SourceKeychain):
            return await self.fallback.explain(registry, repository)
        credential = await self.fallback.resolve(registry, repository)
        return Resolution(credential, type(self.fallback).__name__, "custom keychain")
