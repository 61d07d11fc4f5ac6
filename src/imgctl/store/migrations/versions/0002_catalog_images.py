"""Create catalog_images: imagelist's image catalog, one row per image id and environment.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table and the indexes the catalog and admission queries use."""
    op.create_table(
        "catalog_images",
        sa.Column("id", sa.Text(), nullable=False),
        # "" when the image belongs to no environment (imagelist's own entries).
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("promoted_by", sa.Text(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", "environment", name="pk_catalog_images"),
    )
    for column in ("name", "updated_at"):
        op.create_index(f"ix_catalog_images_{column}", "catalog_images", [column])


def downgrade() -> None:
    """Drop the table and, with it, the catalog."""
    op.drop_table("catalog_images")
