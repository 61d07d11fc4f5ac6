"""Who is looking at a page, and which environments they may read.

A caller presents a token, as ``Authorization: Bearer <token>`` or in the login cookie
(:data:`COOKIE`, set by ``POST /login``). ``imgctl server`` verifies it as its gRPC API does
(:class:`OidcAccess`: the OIDC verifier, ``OIDC_ALLOWED_GROUPS`` included); ``imgctl catalog
serve``, which has no OIDC configuration, takes the tokens of its tokens file
(:class:`CatalogTokenAccess`). With ``--public-pages`` no token is needed and everything is shown.

Which environments a caller may read, from the server's policy file: those their groups may
promote into (an environment the policy does not list is open to every allowed caller), and the
one before each of those in the pipeline order (where their promotions come from). No policy
file: every environment. A catalog token, or public pages: every environment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from imgctl.errors import InvalidTokenError

if TYPE_CHECKING:
    from imgctl.catalog.tokens import TokenFile
    from imgctl.identity.verifier import TokenVerifier
    from imgctl.promotion.environments import Policy

__all__ = [
    "CATALOG_SESSION_SECONDS",
    "COOKIE",
    "MAX_WEB_TOKEN",
    "Access",
    "AccessDenied",
    "CatalogTokenAccess",
    "OidcAccess",
    "Viewer",
]

COOKIE: Final = "__Host-imgctl-session"
"""The login cookie: ``__Host-`` makes browsers insist on Secure, path / and no Domain."""

CATALOG_SESSION_SECONDS: Final = 8 * 3600
"""How long a login with a catalog token (which does not expire by itself) lasts."""

MAX_WEB_TOKEN: Final = 16 * 1024
"""Longest token read from a header, cookie or the login form (OIDC tokens are about 1 KiB)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A caller allowed to read pages: who, until when, and where they may promote.

    ``promotes_to`` None means every environment is readable (no policy, a catalog token,
    public pages).
    """

    name: str
    public: bool = False
    expires_at: int | None = None
    promotes_to: frozenset[str] | None = None

    def readable(self, order: Sequence[str]) -> list[str]:
        """The environments of ``order`` this viewer may read, in that order."""
        allowed = self.promotes_to
        if allowed is None:
            return list(order)
        return [
            name
            for index, name in enumerate(order)
            if name in allowed or (index + 1 < len(order) and order[index + 1] in allowed)
        ]


class AccessDenied(Exception):
    """No page for this caller: ``status`` 401 (no or a bad token) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Access(Protocol):
    """How a process decides who may read its pages."""

    public: bool
    kind: str  # "oidc" or "catalog", for the login page's words

    async def identify(self, token: str | None) -> Viewer:
        """The viewer ``token`` proves; AccessDenied when it proves none."""
        ...

    def session_seconds(self, viewer: Viewer) -> int:
        """How long a login cookie for ``viewer`` may live (its token's remaining life)."""
        ...


_PUBLIC: Final = Viewer(name="anyone", public=True)


def _no_token(kind: str) -> AccessDenied:
    what = "an OIDC token (imgctl token)" if kind == "oidc" else "a token of the tokens file"
    return AccessDenied(401, f"sign in: these pages need {what}")


class OidcAccess:
    """``imgctl server``'s pages: the same OIDC tokens as its gRPC API, the policy's rights."""

    kind = "oidc"

    def __init__(self, verifier: TokenVerifier, policy: Policy | None, *, public: bool) -> None:
        self.verifier = verifier
        self.policy = policy
        self.public = public
        self._environments: tuple[str, ...] = ()

    def set_environments(self, names: Sequence[str]) -> None:
        """The configured environments (what "may promote into" is checked against)."""
        self._environments = tuple(names)

    async def identify(self, token: str | None) -> Viewer:
        """Verify ``token`` with the server's verifier; public pages need none."""
        if self.public:
            return _PUBLIC
        if not token:
            raise _no_token(self.kind)
        if len(token) > MAX_WEB_TOKEN:
            raise AccessDenied(401, "the token is too long to be one")
        try:
            principal = await self.verifier.verify(token)
        except InvalidTokenError as error:
            if error.reason == "group_not_allowed":
                raise AccessDenied(403, error.message) from None
            if error.reason == "issuer_unreachable":
                raise AccessDenied(503, error.message) from None
            raise AccessDenied(401, f"token rejected ({error.reason}): {error.message}") from None
        promotes_to: frozenset[str] | None = None
        if self.policy is not None and self.policy.destinations:
            policy = self.policy
            promotes_to = frozenset(
                name for name in self._environments if policy.allows(principal.groups, name)
            )
        return Viewer(
            name=principal.email or principal.subject,
            expires_at=principal.expires_at,
            promotes_to=promotes_to,
        )

    def session_seconds(self, viewer: Viewer) -> int:
        """Until the token expires."""
        if viewer.expires_at is None:
            return 0
        return max(0, int(viewer.expires_at - time.time()))


class CatalogTokenAccess:
    """``imgctl catalog serve``'s pages: a token of its tokens file reads every environment.

    Without a tokens file (and without --public-pages) nobody can sign in: the pages say how
    to turn them on.
    """

    kind = "catalog"

    def __init__(self, tokens: TokenFile | None, *, public: bool) -> None:
        self.tokens = tokens
        self.public = public

    async def identify(self, token: str | None) -> Viewer:
        """Look ``token`` up in the tokens file."""
        if self.public:
            return _PUBLIC
        if self.tokens is None:
            raise AccessDenied(
                403,
                "these pages are turned off: this catalog has no tokens file. Start it with "
                "--tokens-file FILE (its tokens sign in) or with --public-pages "
                "(IMGCTL_PUBLIC_PAGES=true)",
            )
        if not token:
            raise _no_token(self.kind)
        owner = self.tokens.check(token) if len(token) <= MAX_WEB_TOKEN else None
        if owner is None:
            raise AccessDenied(401, "token rejected: it is not an enabled token of the tokens file")
        return Viewer(name=owner, expires_at=int(time.time()) + CATALOG_SESSION_SECONDS)

    def session_seconds(self, viewer: Viewer) -> int:
        """A catalog token does not expire: a login lasts :data:`CATALOG_SESSION_SECONDS`."""
        return CATALOG_SESSION_SECONDS
