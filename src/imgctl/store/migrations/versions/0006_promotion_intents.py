"""Create promotion_intents: promotions recorded before their copy (write-ahead audit).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table, the unique lock key and the index the recovery sweep reads."""
    op.create_table(
        "promotion_intents",
        # INTEGER on SQLite, where only that exact type auto-increments (as in audit_events).
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("lock_key", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=True),
        sa.Column("audit", sa.Text(), nullable=False),
        sa.Column("catalog", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # NULLs are distinct in a unique index on both databases: settled rows keep no key.
    op.create_index("ux_promotion_intents_lock_key", "promotion_intents", ["lock_key"], unique=True)
    op.create_index(
        "ix_promotion_intents_state_lease", "promotion_intents", ["state", "lease_until"]
    )


def downgrade() -> None:
    """Drop the table: promotions in flight are then no longer recoverable."""
    op.drop_table("promotion_intents")
