"""GitHub Container Registry credentials: ``GITHUB_TOKEN``, as GitHub Actions provides it."""

from __future__ import annotations

from collections.abc import Mapping

from imgctl.authn._cloud import normalise_host
from imgctl.authn._keychain import ANONYMOUS, Credential, Resolution, SourceKeychain

__all__ = ["GitHubKeychain"]


class GitHubKeychain(SourceKeychain):
    """``GITHUB_TOKEN`` (as ``GITHUB_ACTOR``) for ``ghcr.io``, as GitHub Actions provides."""

    name = "ghcr"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    async def explain(self, registry: str, repository: str) -> Resolution:
        """The token for ghcr.io when ``GITHUB_TOKEN`` is set."""
        if normalise_host(registry) != "ghcr.io":
            return Resolution(ANONYMOUS, self.name, "not ghcr.io")
        token = self._environ.get("GITHUB_TOKEN")
        if not token:
            return Resolution(ANONYMOUS, self.name, "GITHUB_TOKEN not set")
        actor = self._environ.get("GITHUB_ACTOR")
        username = actor or "imgctl"
        origin = "GITHUB_ACTOR" if actor else "default user"
        return Resolution(
            Credential(username=username, password=token),
            self.name,
            f"GITHUB_TOKEN as {username!r} ({origin})",
        )
