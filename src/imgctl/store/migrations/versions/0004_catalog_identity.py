"""One catalog entry per digest, repository and environment.

Reserved: the change that needs it fills it in.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
