"""SSH-JWT ids already used, shared by issuer restarts and replicas.

Reserved: the change that needs it fills it in.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
