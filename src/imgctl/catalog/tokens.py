"""imagelist's bearer tokens file, reloaded when it changes on disk.

The file is ``tokens: [{name, token, description, is_disabled}]``. A change is noticed by
``stat`` (size, mtime, inode and the symlink-resolved path) at most every
:data:`CHECK_INTERVAL_S` seconds, so an in-place edit, an atomic rename and a Kubernetes secret
update (the ``..data`` symlink retargeted) all take effect. A deleted file means no valid tokens;
a malformed one keeps the last good tokens. Tokens are never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

__all__ = ["CHECK_INTERVAL_S", "TokenFile"]

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S: Final = 0.5

_Signature = tuple[str, int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Token:
    name: str
    secret: bytes


class _MalformedError(ValueError):
    pass


class TokenFile:
    """The enabled tokens of one YAML file; :meth:`check` names the token's owner."""

    def __init__(self, path: str | os.PathLike[str], *, interval: float = CHECK_INTERVAL_S) -> None:
        self._path = Path(path)
        self._interval = interval
        self._lock = threading.Lock()
        self._tokens: tuple[_Token, ...] = ()
        self._signature: _Signature | None = None
        self._checked_at = float("-inf")
        self._refresh(time.monotonic())

    @property
    def path(self) -> Path:
        """The tokens file, as configured (before following symlinks)."""
        return self._path

    def check(self, token: str) -> str | None:
        """Return the name of the enabled token equal to ``token``, or None.

        Every enabled token is compared in constant time, whichever matches.
        """
        now = time.monotonic()
        if now - self._checked_at >= self._interval:
            self._refresh(now)
        presented = token.encode("utf-8", "surrogateescape")
        found: str | None = None
        for candidate in self._tokens:
            if hmac.compare_digest(presented, candidate.secret) and found is None:
                found = candidate.name
        return found if presented else None

    def _refresh(self, now: float) -> None:
        with self._lock:
            if now - self._checked_at < self._interval:
                return
            self._checked_at = now
            signature = self._stat()
            if signature == self._signature:
                return
            self._signature = signature
            if signature is None:
                if self._tokens:
                    logger.warning("tokens file %s is gone: no token is valid", self._path)
                self._tokens = ()
                return
            try:
                self._tokens = _parse(self._path.read_bytes())
            except FileNotFoundError:
                self._signature = None
                self._tokens = ()
                logger.warning("tokens file %s is gone: no token is valid", self._path)
            except (OSError, _MalformedError) as error:
                logger.warning(
                    "tokens file %s not loaded (%s); keeping the previous %d token(s)",
                    self._path,
                    error,
                    len(self._tokens),
                )
            else:
                logger.info("tokens file %s loaded: %d enabled", self._path, len(self._tokens))

    def _stat(self) -> _Signature | None:
        try:
            info = self._path.stat()
            target = os.path.realpath(self._path)
        except OSError:
            return None
        return (target, info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)


def _parse(data: bytes) -> tuple[_Token, ...]:
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as error:
        # The mark says where; the message itself could quote a token.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _MalformedError(f"not YAML{where}") from None
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
        raise _MalformedError("expected a mapping with a 'tokens' list")
    tokens: list[_Token] = []
    for index, entry in enumerate(document["tokens"]):
        if not isinstance(entry, dict):
            raise _MalformedError(f"tokens[{index}] is not a mapping")
        name, secret = entry.get("name"), entry.get("token")
        disabled = entry.get("is_disabled", False)
        if not isinstance(name, str) or not name:
            raise _MalformedError(f"tokens[{index}] has no name")
        if not isinstance(secret, str) or not secret:
            raise _MalformedError(f"tokens[{index}] ({name}) has no token")
        if not isinstance(disabled, bool):
            raise _MalformedError(f"tokens[{index}] ({name}): is_disabled must be true or false")
        if not disabled:
            tokens.append(_Token(name, secret.encode("utf-8", "surrogateescape")))
    return tuple(tokens)
