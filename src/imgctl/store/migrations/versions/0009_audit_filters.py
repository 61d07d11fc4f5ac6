"""Indexes for reading the audit trail by user and environment (issue 20's /audit, audit ls).

audit_events.email, source_env and destination_env: a filter on a user or an environment that
few rows match would otherwise scan the whole time index (about 0.5-1.3 s per page over a
million rows, measured on SQLite and PostgreSQL); subject and result were indexed already.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Three single-column indexes; the planner combines them with OR and the time order."""
    op.create_index("ix_audit_events_email", "audit_events", ["email"])
    op.create_index("ix_audit_events_source_env", "audit_events", ["source_env"])
    op.create_index("ix_audit_events_destination_env", "audit_events", ["destination_env"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_audit_events_destination_env", table_name="audit_events")
    op.drop_index("ix_audit_events_source_env", table_name="audit_events")
    op.drop_index("ix_audit_events_email", table_name="audit_events")
