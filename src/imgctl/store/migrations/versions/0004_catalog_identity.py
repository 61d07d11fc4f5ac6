"""One catalog entry per digest, repository and environment.

The key was (id, environment): promoting one digest under a second repository name overwrote
the first repository's entry, and the admission webhook then refused the first repository's
image and admitted the second repository's tags that were never promoted. The key becomes
(id, environment, name). Entries of no environment ("", imagelist's own) keep imagelist's
identity, the id alone, through a partial unique index. Every existing row is kept: under the
old key no two rows can collide under the new one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "catalog_images"
_PRIMARY_KEY = "pk_catalog_images"
_UNPLACED_ID = "ux_catalog_images_id_without_environment"
_UNPLACED = "environment = ''"
_COLUMNS = (
    "id",
    "environment",
    "name",
    "tags",
    "source",
    "promoted_by",
    "promoted_at",
    "created_at",
    "updated_at",
)
_INDEXED = ("name", "updated_at")


def upgrade() -> None:
    """Key the table by (id, environment, name); keep one entry per id where environment is ""."""
    _set_primary_key(["id", "environment", "name"])
    op.create_index(
        _UNPLACED_ID,
        _TABLE,
        ["id"],
        unique=True,
        sqlite_where=sa.text(_UNPLACED),
        postgresql_where=sa.text(_UNPLACED),
    )


def downgrade() -> None:
    """Back to (id, environment): of the entries sharing one, only the newest is kept."""
    op.drop_index(_UNPLACED_ID, _TABLE)
    entries = _table(_TABLE)
    newer = entries.alias("newer")
    op.execute(
        entries.delete().where(
            sa.exists().where(
                newer.c.id == entries.c.id,
                newer.c.environment == entries.c.environment,
                sa.or_(
                    newer.c.updated_at > entries.c.updated_at,
                    sa.and_(
                        newer.c.updated_at == entries.c.updated_at,
                        newer.c.name > entries.c.name,
                    ),
                ),
            )
        )
    )
    _set_primary_key(["id", "environment"])


def _set_primary_key(columns: list[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        # In place: PostgreSQL changes a primary key without copying the table's rows around.
        op.drop_constraint(_PRIMARY_KEY, _TABLE, type_="primary")
        op.create_primary_key(_PRIMARY_KEY, _TABLE, columns)
        return
    # SQLite cannot alter a primary key: copy the rows into a table with the new one.
    copy = f"_{_TABLE}_rekeyed"
    op.create_table(
        copy,
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("promoted_by", sa.Text(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*columns, name=_PRIMARY_KEY),
    )
    source = _table(_TABLE)
    op.execute(_table(copy).insert().from_select(_COLUMNS, source.select()))
    op.drop_table(_TABLE)  # and its indexes
    op.rename_table(copy, _TABLE)
    for column in _INDEXED:
        op.create_index(f"ix_{_TABLE}_{column}", _TABLE, [column])


def _table(name: str) -> sa.TableClause:
    """A lightweight handle on the catalog's columns (no reflection, no schema of its own)."""
    return sa.table(name, *(sa.column(column) for column in _COLUMNS))
