"""Basic authentication against an htpasswd file of bcrypt entries (``htpasswd -B``).

It lets in exactly whom docker-registry (distribution, ``auth.htpasswd``) lets in for the same
file and header. That registry checks with Go's ``bcrypt.CompareHashAndPassword``, whose key
schedule reads at most 72 bytes of a password: longer passwords are checked on their first 72
bytes, as every bcrypt tool before golang.org/x/crypto 0.5.0 stored them (0.5.0 refuses them in
``GenerateFromPassword`` only). Python's ``bcrypt`` raises on more than 72 bytes instead, so the
password is cut to 72 bytes before the check, which is the same computation.
"""

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
# bcrypt's key schedule reads the password (and a NUL after it) up to this many bytes.
_BCRYPT_KEY_BYTES = 72
# What Go's strings.TrimSpace trims (unicode.White_Space); str.strip() would also trim \x1c-\x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# Cached successes; cleared whole when full (a demo registry has a handful of users).
_CACHE_LIMIT = 1024


class Htpasswd:
    """Users and their bcrypt hashes; checks ``Authorization: Basic`` headers."""

    def __init__(self, users: dict[str, bytes]) -> None:
        # Names are compared as the bytes of the file (Go compares bytes, UTF-8 or not).
        self._users = [(_raw(user), hashed) for user, hashed in users.items()]
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
            # Bytes that are not UTF-8 survive as surrogates and become the same bytes again.
            text = path.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise UsageError(f"cannot read htpasswd file {path}: {exc.strerror}") from None
        users: dict[str, bytes] = {}
        # Lines as docker-registry reads them: split on "\n" only (splitlines() would also split
        # at \x0c, \x1c or U+2028 inside a name), trimmed of what Go counts as white space.
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip(_GO_SPACE)
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
        # Parsed as Go's Request.BasicAuth: "Basic " in any case, then strict base64.
        if not authorization or authorization[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(authorization[6:], validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        # The name's length goes first, so that no other name/password split of the same
        # bytes (user "a", password "b\0pw" against user "a\0b", password "pw") is remembered.
        proven = len(user).to_bytes(8, "big") + user + password
        proof = hmac.new(self._key, proven, hashlib.sha256).digest()
        if proof in self._proven:
            return True
        hashed = self._dummy
        known = False
        # Compare against every user, so the time taken does not depend on which one matched.
        for candidate, candidate_hash in self._users:
            if hmac.compare_digest(candidate, user):
                hashed, known = candidate_hash, True
        try:
            matches = await asyncio.to_thread(bcrypt.checkpw, password[:_BCRYPT_KEY_BYTES], hashed)
        except ValueError:  # a hash bcrypt cannot use (cost out of range): nobody gets in
            return False
        if not (matches and known):
            return False
        if len(self._proven) >= _CACHE_LIMIT:
            self._proven.clear()
        self._proven.add(proof)
        return True


def _raw(text: str) -> bytes:
    """The bytes a name had in the file (undoing ``surrogateescape``)."""
    return text.encode("utf-8", "surrogateescape")
