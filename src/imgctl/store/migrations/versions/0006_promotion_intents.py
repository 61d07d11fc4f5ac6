"""Promotions recorded before their copy (write-ahead audit).

Reserved: the change that needs it fills it in.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
