"""audit_events.attested, attestation_error; catalog_images.signed, attested.

Whether a server promotion wrote (or found) its promotion attestation, and why not; and, per
catalog entry, whether the promotion that recorded it was signed and attested.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nullable columns: rows written before attestations existed say nothing (NULL)."""
    # batch_alter_table, as in 0007: plain ALTER TABLE on PostgreSQL, what SQLite can do there.
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("attested", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("attestation_error", sa.Text(), nullable=True))
    with op.batch_alter_table("catalog_images") as batch:
        batch.add_column(sa.Column("signed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("attested", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("catalog_images") as batch:
        batch.drop_column("attested")
        batch.drop_column("signed")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("attestation_error")
        batch.drop_column("attested")
