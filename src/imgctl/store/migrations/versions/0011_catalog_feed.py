"""The catalog's change feed: admission keeps the catalog in memory and follows its writes.

``catalog_feed`` holds one row: ``revision``, bumped by every write to the catalog in the
write's own transaction (the row lock makes writers take turns on PostgreSQL, so revisions are
committed in order), and ``pruned``, the newest revision whose removals are no longer kept.
``catalog_images.revision`` is the revision that last wrote an entry, and ``catalog_removals``
names the entries each delete took away. A reader that saw revision N reads what changed after
it with two indexed queries (issue 21 target 3).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the revision column and its index, the removals table and the feed's one row."""
    op.add_column(
        "catalog_images",
        sa.Column("revision", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_catalog_images_revision", "catalog_images", ["revision"])
    op.create_table(
        "catalog_removals",
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
    )
    op.create_index("ix_catalog_removals_revision", "catalog_removals", ["revision"])
    feed = op.create_table(
        "catalog_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("pruned", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_feed"),
    )
    op.bulk_insert(feed, [{"id": 1, "revision": 0, "pruned": 0}])


def downgrade() -> None:
    """Drop the feed; the catalog's entries stay as they are."""
    op.drop_table("catalog_feed")
    op.drop_index("ix_catalog_removals_revision", table_name="catalog_removals")
    op.drop_table("catalog_removals")
    op.drop_index("ix_catalog_images_revision", table_name="catalog_images")
    with op.batch_alter_table("catalog_images") as batch:
        batch.drop_column("revision")
