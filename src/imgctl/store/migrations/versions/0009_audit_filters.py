"""An index for reading the audit trail by user (issue 20's /audit and imgctl audit ls).

audit_events.email: the user filter matches the subject (indexed already) or the email; without
it, a user few rows name made every page scan the whole time index (over a million rows:
0.56 s per page on SQLite and 0.39 s on PostgreSQL for a user with no rows; with it 3 ms on
SQLite). The environments get no index: an environment holds a large share of the rows, newest
first is the time index's order, and SQLite (which has no statistics unless ANALYZE ran) took
such an index for selective and sorted its matches instead (2 s per page, measured).

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
    """The email index; the planner combines it with the subject's for the user filter."""
    op.create_index("ix_audit_events_email", "audit_events", ["email"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_audit_events_email", table_name="audit_events")
