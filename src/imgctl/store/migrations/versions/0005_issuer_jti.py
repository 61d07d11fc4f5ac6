"""Create issuer_jti: SSH-JWT ids already used, shared by issuer restarts and replicas.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table and the index the pruning of expired rows reads."""
    op.create_table(
        "issuer_jti",
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", "jti", name="pk_issuer_jti"),
    )
    op.create_index("ix_issuer_jti_expires_at", "issuer_jti", ["expires_at"])


def downgrade() -> None:
    """Drop the table: SSH JWTs used before and still unexpired could then be used again."""
    op.drop_table("issuer_jti")
