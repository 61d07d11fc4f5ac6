"""audit_events.signed, signature_key, signature_error: was a promotion signed, by which key.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nullable columns: rows written before signing existed say nothing (NULL)."""
    # batch_alter_table: SQLite cannot ALTER a table in every way; adding columns it can, and
    # on PostgreSQL the batch is plain ALTER TABLE statements.
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("signed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("signature_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signature_error", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("signature_error")
        batch.drop_column("signature_key")
        batch.drop_column("signed")
