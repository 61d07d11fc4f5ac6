"""Every filter of the audit trail reads its own index newest first (issue 21 target 6).

Over 1,000,000 audit rows (bench/audit.py) a filter whose index held no time read the whole
time index whenever few rows matched, or gathered and sorted every match when many did:
``result=succeeded`` took 1.8 s a page on SQLite (its index, then a sort of 930,000 rows), an
environment no row names 0.3 s, a repository's story with no row 0.6 s (its reference prefix
compared row by row). Now each filter's index is (column, time, id), the query's order after
the column (PostgreSQL reads a page's ids from the index alone, and needs no sort), so the query
(store/_audit_query.py) reads a filter's rows newest first and stops after a page, whether
they are many or none:

* ``subject``, ``email`` and ``result`` get the time and id after them (same names); ``result``
  also the environments, so that a rare result with an
  environment (read from the result's index: a rare result holds few rows, an environment
  many) checks the environment in the index, without reading each row;
* ``source_env`` and ``destination_env`` get an index each: an environment is two branches of a
  UNION ALL, each reading its index in time order (0009 left them out because an index of the
  environment alone made SQLite sort a third of the trail);
* ``ix_audit_events_route`` (source_env, destination_env, time, id): under a readable limit the
  readable (source, destination) pairs are looked up one by one, each in time order, where
  checking the rows one by one read every row of an environment that were mostly unreadable;
  the pairs with one environment absent have partial indexes of their own
  (``ix_audit_events_source_only``, ``ix_audit_events_destination_only``): PostgreSQL does
  not read the columns after an ``IS NULL`` as ordered;
* ``repository``, new: the image repository a promotion names, the part of its reference
  before the first ``:`` or ``@`` (store/_history.py ``repository_of``, which fills it for new
  rows; the UPDATE below fills it for rows written before), with its (repository, time, id)
  index.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "audit_events"
_WITH_TIME = ("subject", "email", "source_env", "destination_env", "repository")
# Pairs with one environment absent: (index, its column, the absent one).
_ONE_SIDED = (
    ("ix_audit_events_source_only", "source_env", "destination_env"),
    ("ix_audit_events_destination_only", "destination_env", "source_env"),
)

# The position of the reference's first ":" or "@" (0: neither); {instr} and {least} are the
# dialect's strpos/instr and least/min. Characters, like Python's str.find.
_CUT = (
    "CASE WHEN {instr}(reference, ':') = 0 THEN {instr}(reference, '@') "
    "WHEN {instr}(reference, '@') = 0 THEN {instr}(reference, ':') "
    "ELSE {least}({instr}(reference, ':'), {instr}(reference, '@')) END"
)
# repository_of, in SQL: promotions of images, not SPA references, 1 to 255 characters.
_BACKFILL = (
    "UPDATE audit_events SET repository = substr(reference, 1, ({cut}) - 1) "
    "WHERE action = 'promote' AND (kind IS NULL OR kind = 'image') AND reference IS NOT NULL "
    "AND substr(reference, 1, 4) != 'spa:' AND ({cut}) BETWEEN 2 AND 256"
)


def upgrade() -> None:
    """Add and fill the repository column; give each filter's index the time."""
    op.add_column(_TABLE, sa.Column("repository", sa.Text(), nullable=True))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        cut = _CUT.format(instr="instr", least="min")
    else:
        cut = _CUT.format(instr="strpos", least="least")
    op.execute(sa.text(_BACKFILL.format(cut=cut)))
    for column in ("subject", "email", "result"):
        op.drop_index(f"ix_audit_events_{column}", table_name=_TABLE)
    for column in _WITH_TIME:
        op.create_index(f"ix_audit_events_{column}", _TABLE, [column, "time", "id"])
    route = ["source_env", "destination_env", "time", "id"]
    op.create_index("ix_audit_events_route", _TABLE, route)
    for name, column, absent in _ONE_SIDED:
        where = sa.text(f"{absent} IS NULL")
        op.create_index(
            name, _TABLE, [column, "time", "id"], sqlite_where=where, postgresql_where=where
        )
    op.create_index(
        "ix_audit_events_result", _TABLE, ["result", "time", "id", "source_env", "destination_env"]
    )


def downgrade() -> None:
    """Back to 0011: the single-column indexes, no repository column."""
    for name, _, _ in _ONE_SIDED:
        op.drop_index(name, table_name=_TABLE)
    for column in (*_WITH_TIME, "result", "route"):
        op.drop_index(f"ix_audit_events_{column}", table_name=_TABLE)
    for column in ("subject", "email", "result"):
        op.create_index(f"ix_audit_events_{column}", _TABLE, [column])
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("repository")
