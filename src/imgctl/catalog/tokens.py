"""imagelist's bearer tokens file, reloaded when it changes on disk.

The file is ``tokens: [{name, token, description, is_disabled}]``. A change is noticed by
``stat`` (:mod:`imgctl._internal.filechanges`: size, times, inode and the symlink-resolved path)
at most every :data:`CHECK_INTERVAL_S` seconds, so an in-place edit, an atomic rename and a
Kubernetes secret update (the ``..data`` symlink retargeted) all take effect.

The file is read strictly and fails closed. It is imgctl's strict YAML (a key written twice in
any spelling is refused), every entry has exactly the keys above, ``name`` and ``token`` are
non-empty strings, ``is_disabled`` is a real YAML boolean (``"true"`` in quotes is refused, so is
an empty value), and no name or token is listed twice. A file that does not load stops
:class:`TokenFile` from being built (the server does not start); once serving, a file that stops
loading, or is deleted, refuses every token until it is fixed: a mistake in a revocation must
never keep the revoked token alive. Errors name the file and the line, never a token.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from imgctl._internal import strict_yaml
from imgctl._internal.filechanges import CHECK_INTERVAL_S, FileChanges
from imgctl._internal.files import read_text
from imgctl._internal.messages import closest
from imgctl.errors import UsageError

__all__ = ["CHECK_INTERVAL_S", "TokenFile"]

logger = logging.getLogger(__name__)

# imagelist's tokens files hold a few entries; anything near this is the wrong file.
MAX_TOKENS_FILE_BYTES: Final = 1024 * 1024

_ENTRY_KEYS: Final = ("name", "token", "description", "is_disabled")


@dataclass(frozen=True, slots=True)
class _Token:
    name: str
    secret: bytes


class _MalformedError(ValueError):
    """The file does not load; the message names the line and never quotes a token."""


class TokenFile:
    """The enabled tokens of one YAML file; :meth:`check` names the token's owner.

    Building one reads the file: UsageError if it is missing or does not load strictly.
    """

    def __init__(self, path: str | os.PathLike[str], *, interval: float = CHECK_INTERVAL_S) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        # Taken before the first read: a change between the two is read again, never missed.
        self._changes = FileChanges(self._path, interval=interval)
        try:
            self._tokens = _parse(_read(self._path))
        except _MalformedError as error:
            raise UsageError(
                f"tokens file {self._path}: {error}",
                hint="fix the file: tokens: [{name, token, description, is_disabled: true|false}]",
            ) from None
        logger.info("tokens file %s loaded: %d enabled", self._path, len(self._tokens))

    @property
    def path(self) -> Path:
        """The tokens file, as configured (before following symlinks)."""
        return self._path

    def check(self, token: str) -> str | None:
        """Return the name of the enabled token equal to ``token``, or None.

        Every enabled token is compared in constant time, whichever matches.
        """
        self._refresh()
        presented = token.encode("utf-8", "surrogateescape")
        found: str | None = None
        for candidate in self._tokens:
            if hmac.compare_digest(presented, candidate.secret) and found is None:
                found = candidate.name
        return found if presented else None

    def _refresh(self) -> None:
        # Under the lock: a check made while another thread reloads waits for the new tokens.
        with self._lock:
            if not self._changes.poll():
                return
            if not self._changes.exists:
                logger.error("tokens file %s is gone: every token is refused", self._path)
                self._tokens = ()
                return
            try:
                self._tokens = _parse(_read(self._path))
            except _MalformedError as error:
                # Fail closed: the previous tokens may include one this edit meant to revoke.
                self._tokens = ()
                logger.error(
                    "tokens file %s does not load (%s): every token is refused until it is fixed",
                    self._path,
                    error,
                )
            else:
                logger.info("tokens file %s loaded: %d enabled", self._path, len(self._tokens))


def _read(path: Path) -> str:
    try:
        # absolute(): a file named '-' is a file here, not standard input.
        text = read_text(path.absolute(), "tokens file", limit=MAX_TOKENS_FILE_BYTES)
    except UsageError as error:
        # read_text's messages name the file and say what is wrong with it, never its content.
        raise _MalformedError(
            error.message.replace(f"tokens file {path.absolute()} ", "")
        ) from None
    return text


def _parse(text: str) -> tuple[_Token, ...]:
    try:
        document = strict_yaml.load_document(text)
    except strict_yaml.StrictYAMLError as error:
        raise _MalformedError(error.redacted()) from None  # the text could quote a token
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
        raise _MalformedError("expected a mapping with a 'tokens' list")
    if set(data) != {"tokens"}:
        extra = next(key for key in data if key != "tokens")
        raise _MalformedError(
            f"{_unknown(extra)} at the top{document.key_at(data, extra)}; the only key is tokens"
        )
    tokens: list[_Token] = []
    names: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for index, entry in enumerate(data["tokens"]):
        where = f"tokens[{index}]{document.at(entry)}"
        if not isinstance(entry, dict):
            raise _MalformedError(f"{where} is not a mapping")
        for key in entry:
            if key not in _ENTRY_KEYS:
                raise _MalformedError(
                    f"tokens[{index}]{document.key_at(entry, key)}: {_unknown(key)};"
                    f" allowed: {', '.join(_ENTRY_KEYS)}"
                )
        name, secret = entry.get("name"), entry.get("token")
        if not isinstance(name, str) or not name:
            raise _MalformedError(f"{where}: name must be a non-empty string")
        if not isinstance(secret, str) or not secret:
            raise _MalformedError(f"{where} ({name}): token must be a non-empty string")
        description = entry.get("description")
        if "description" in entry and not isinstance(description, str):
            raise _MalformedError(f"{where} ({name}): description must be a string")
        disabled = entry.get("is_disabled", False)
        if not isinstance(disabled, bool):
            # A quoted "true" is a string: refusing it keeps the revocation from being lost.
            raise _MalformedError(
                f"{where} ({name}): is_disabled must be true or false, not {_kind(disabled)}"
            )
        folded = strict_yaml.normalise_key(name)
        if folded in names:
            raise _MalformedError(f"{where}: name {name!r} is already used by {names[folded]}")
        names[folded] = where
        if secret in secrets:
            # One entry may revoke what another enables: the file is ambiguous.
            raise _MalformedError(f"{where} ({name}): same token as {secrets[secret]}")
        secrets[secret] = f"{where} ({name})"
        if not disabled:
            tokens.append(_Token(name, secret.encode("utf-8", "surrogateescape")))
    return tuple(tokens)


def _unknown(key: object) -> str:
    # Only a near miss of a field name is quoted: any other key could be a pasted token.
    guess = closest(key, _ENTRY_KEYS, cutoff=0.8) if isinstance(key, str) else None
    if guess is not None:
        return f"unknown key {key!r} (did you mean {guess!r}?)"
    return "an unknown key"


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "a string (write true or false without quotes)"
    if value is None:
        return "empty"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "a mapping"
