"""Registry auth challenges (``WWW-Authenticate``) and bearer tokens."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

__all__ = ["Challenge", "Token", "parse_challenges"]

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\b")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One auth scheme offered by a registry, with its parameters (realm, service, scope...)."""

    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """Where to fetch tokens (bearer) or the protection space name (basic)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` a token must be issued for."""
        return self.params.get("service")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (quoted values may contain commas)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme_match = _SCHEME_RE.match(header, pos)
        if scheme_match is None:
            break
        scheme = scheme_match.group(1).lower()
        pos = scheme_match.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM_RE.match(header, pos)
            if param is None:
                break
            quoted = param.group(2)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else param.group(3)
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
        # Skip separators between challenges that carried no parameters.
        while pos < len(header) and header[pos] in " ,":
            pos += 1
    return challenges


@dataclass(slots=True)
class Token:
    """A bearer token and when it stops being usable."""

    value: str
    expires_at: float

    def fresh(self, margin: float = 10.0) -> bool:
        """True while the token has more than ``margin`` seconds left."""
        return time.monotonic() + margin < self.expires_at
