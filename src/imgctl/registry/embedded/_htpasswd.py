"""Basic authentication against an htpasswd file of bcrypt entries (``htpasswd -B``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
from pathlib import Path

import bcrypt

from imgctl.errors import UsageError

__all__ = ["Htpasswd"]

_BCRYPT_RE = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
# Cached successes; cleared whole when full (a demo registry has a handful of users).
_CACHE_LIMIT = 1024


class Htpasswd:
    """Users and their bcrypt hashes; checks ``Authorization: Basic`` headers."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = [(user.encode(), hashed) for user, hashed in users.items()]
        # A hash of a fixed password, checked for unknown users so that the time an answer
        # takes does not tell whether the user exists.
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=4))
        # bcrypt costs tens of milliseconds; a push makes dozens of requests with the same
        # credentials. Keys are keyed hashes of what was proven, never the passwords.
        self._key = secrets.token_bytes(32)
        self._proven: set[bytes] = set()

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        """Read ``path``; UsageError naming the line when an entry is not ``user:bcrypt``."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read htpasswd file {path}: {reason}") from None
        users: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise UsageError(f"{path}:{number}: expected USER:HASH")
            if _BCRYPT_RE.fullmatch(hashed) is None:
                raise UsageError(
                    f"{path}:{number}: user {user!r} does not have a bcrypt hash",
                    hint="only bcrypt entries are supported: htpasswd -B",
                )
            users[user] = hashed.encode()
        if not users:
            raise UsageError(f"htpasswd file {path} lists no users")
        return cls(users)

    async def check(self, authorization: str | None) -> bool:
        """True when ``authorization`` carries a known user's right password."""
        if not authorization:
            return False
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        proof = hmac.new(self._key, user + b"\0" + password, hashlib.sha256).digest()
        if proof in self._proven:
            return True
        hashed = self._dummy
        known = False
        # Compare against every user, so the time taken does not depend on which one matched.
        for candidate, candidate_hash in self._users:
            if hmac.compare_digest(candidate, user):
                hashed, known = candidate_hash, True
        try:
            matches = await asyncio.to_thread(bcrypt.checkpw, password, hashed)
        except ValueError:  # bcrypt refuses passwords longer than 72 bytes
            return False
        if not (matches and known):
            return False
        if len(self._proven) >= _CACHE_LIMIT:
            self._proven.clear()
        self._proven.add(proof)
        return True
