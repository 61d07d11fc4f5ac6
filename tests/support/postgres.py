"""Databases for tests: a SQLite file, or a fresh schema in the machine's PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@contextmanager
def scratch_database(backend: str, directory: Path) -> Iterator[str]:
    """A database URL of ``backend`` that no other test sees; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/state/imgctl.db"
        return
    schema = f"imgctl_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def migration_head() -> str:
    """The newest revision in the package's migrations: what a migrated database is at."""
    from alembic.script import ScriptDirectory

    from imgctl.store._store import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head
