"""Which database to use: ``IMGCTL_DATABASE_URL``, else a SQLite file in the state directory."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from imgctl.errors import UsageError

__all__ = ["DATABASE_FILENAME", "DATABASE_URL_ENV", "database_url", "redact_url"]

DATABASE_URL_ENV: Final = "IMGCTL_DATABASE_URL"
DATABASE_FILENAME: Final = "imgctl.db"

_POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql", "postgresql+psycopg"})
_SQLITE_SCHEMES: Final = frozenset({"sqlite", "sqlite+pysqlite"})
_HINT: Final = (
    f"set {DATABASE_URL_ENV} to postgresql://USER:PASSWORD@HOST:5432/DBNAME "
    "or sqlite:////absolute/path/imgctl.db, or unset it to use a SQLite file in the state directory"
)
_QUERY_SECRET: Final = re.compile(r"(?i)((?:^|[?&\s])password=)[^&\s]*")


def database_url(
    environ: Mapping[str, str], state_dir: Path, filename: str = DATABASE_FILENAME
) -> str:
    """Return the database URL to use, normalised for SQLAlchemy with the psycopg 3 driver.

    ``IMGCTL_DATABASE_URL`` wins when set and not blank (the one place that reads it); otherwise
    the SQLite file ``state_dir/filename`` (``imgctl.db``). Raises
    :class:`~imgctl.errors.UsageError` (naming the variable, never the password) for anything
    but a PostgreSQL or SQLite file URL.
    """
    configured = environ.get(DATABASE_URL_ENV, "").strip()
    if not configured:
        return URL.create("sqlite", database=str(state_dir.absolute() / filename)).render_as_string(
            hide_password=False
        )
    return normalise_url(configured)


def normalise_url(raw: str) -> str:
    """Return ``raw`` with its driver pinned (``postgresql+psycopg``, ``sqlite``), or UsageError."""
    url = parse_url(raw)
    return url.render_as_string(hide_password=False)


def parse_url(raw: str) -> URL:
    """Parse and check a database URL; see :func:`database_url` for what is accepted."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # Not echoed: without a URL's shape there is no telling where a password might be.
        raise UsageError(f"{DATABASE_URL_ENV} is not a database URL", hint=_HINT) from None
    if url.drivername in _POSTGRES_SCHEMES:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_SCHEMES:
        if not url.database or url.database == ":memory:" or "mode=memory" in raw:
            # Each pooled connection would get its own empty database and the audit trail
            # would vanish with the process.
            raise _unsupported(raw, "is an in-memory SQLite database; the audit trail needs a file")
        return url.set(drivername="sqlite")
    raise _unsupported(raw, f"uses {url.drivername!r}; only PostgreSQL and SQLite are supported")


def redact_url(raw: str) -> str:
    """Return ``raw`` with any password, in the user part or the query, replaced by ``***``."""
    scheme, sep, rest = raw.partition("://")
    if sep:
        # Up to the last "@": an unescaped "@" in a password must not leave its tail visible.
        userinfo, at, location = rest.rpartition("@")
        if at:
            user, colon, _ = userinfo.partition(":")
            rest = f"{user}:***@{location}" if colon else rest
        raw = f"{scheme}{sep}{rest}"
    return _QUERY_SECRET.sub(r"\1***", raw)


def url_secrets(raw: str) -> set[str]:
    """Return the strings that would give away the password in ``raw``, for scrubbing messages."""
    found: set[str] = set()
    _, sep, rest = raw.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    try:
        password = make_url(raw).password
    except (ArgumentError, ValueError):
        password = None
    if password:
        found.add(password)
    found.update(match.group(0).partition("=")[2] for match in _QUERY_SECRET.finditer(raw))
    for secret in list(found):
        found.update(secret.split("@"))
    return {secret for secret in found if secret}


def scrub(text: str, raw_url: str) -> str:
    """Return ``text`` with every trace of the password in ``raw_url`` replaced by ``***``."""
    for secret in sorted(url_secrets(raw_url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _unsupported(raw: str, problem: str) -> UsageError:
    return UsageError(f"{DATABASE_URL_ENV}={redact_url(raw)!r} {problem}", hint=_HINT)
