"""Create scan_watches: the state of each repository watch (imgctl scan), one row per watch.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table; it is small (one row per watch), so no index beyond the key."""
    op.create_table(
        "scan_watches",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("image", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("scan_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("transition_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latest_tag", sa.Text(), nullable=True),
        sa.Column("latest_digest", sa.Text(), nullable=True),
        sa.Column("promoted_tag", sa.Text(), nullable=True),
        sa.Column("promoted_digest", sa.Text(), nullable=True),
        sa.Column("next_scan_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scan_watches"),
    )


def downgrade() -> None:
    """Drop the table: the next scans start from nothing."""
    op.drop_table("scan_watches")
