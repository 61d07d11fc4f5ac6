"""Databases for tests: a SQLite file, or a fresh schema in the machine's PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

# The machine's PostgreSQL; scripts/test.sh points IMGCTL_TEST_PG_PORT at a throwaway cluster
# where none answers on 5432.
PG_HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("IMGCTL_TEST_PG_PORT") or 5432)
PG_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
PG_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
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
