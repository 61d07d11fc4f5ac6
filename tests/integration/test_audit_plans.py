"""Every filter of the audit trail reads an index, on SQLite and PostgreSQL (issue 21 target 6).

A property of the plans, not a timing: with each filter (alone and combined) the database
looks its rows up in an index instead of reading the table, or the whole time index, from the
newest row on; SQLite without ANALYZE statistics (a server's file has none) and PostgreSQL
with sequential scans priced out (a test table is small enough for one to be cheapest). The
times over 1,000,000 rows are bench/audit.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects import postgresql, sqlite

from imgctl.store import AuditCursor, AuditQuery, AuditRecord, AuditStore, RepositoryQuery

T0 = datetime(2025, 3, 1, tzinfo=UTC)
CURSOR = AuditCursor(T0 + timedelta(days=1), 5)
LATER = T0 + timedelta(hours=1)
READABLE = frozenset({"dev", "staging"})

# Each filter of /api/audit, imgctl audit ls and the story pages, alone and combined, with the
# index its rows must come from (SQLite's plan names it).
CASES: list[tuple[str, AuditQuery, AuditCursor | None, set[str]]] = [
    ("user", AuditQuery(user="alice"), None, {"subject", "email"}),
    ("user, next page", AuditQuery(user="alice"), CURSOR, {"subject", "email"}),
    ("environment", AuditQuery(environment="prod"), None, {"source_env", "destination_env"}),
    ("result", AuditQuery(result="failed"), None, {"result"}),
    ("result succeeded", AuditQuery(result="succeeded"), None, {"result"}),
    ("since and until", AuditQuery(since=T0, until=LATER), None, {"time"}),
    ("user + environment", AuditQuery(user="a", environment="prod"), None, {"subject", "email"}),
    ("user + result", AuditQuery(user="alice", result="succeeded"), None, {"subject", "email"}),
    (
        "environment + rare result",
        AuditQuery(environment="prod", result="denied"),
        None,
        {"result"},
    ),
    (
        "environment + result succeeded",
        AuditQuery(environment="prod", result="succeeded"),
        None,
        {"source_env", "destination_env"},
    ),
    (
        "environment + time",
        AuditQuery(environment="prod", since=T0, until=LATER),
        None,
        {"source_env", "destination_env"},
    ),
    (
        "everything",
        AuditQuery(
            user="alice",
            environment="dev",
            result="failed",
            since=T0,
            until=LATER,
            readable=READABLE,
        ),
        CURSOR,
        {"subject", "email"},
    ),
    ("readable + user", AuditQuery(user="alice", readable=READABLE), None, {"subject", "email"}),
    ("readable", AuditQuery(readable=READABLE), None, {"route", "source_only", "destination_only"}),
    (
        "readable, next page",
        AuditQuery(readable=READABLE),
        CURSOR,
        {"route", "source_only", "destination_only"},
    ),
    (
        "readable + environment",
        AuditQuery(environment="dev", readable=READABLE),
        None,
        {"route", "source_only", "destination_only"},
    ),
    (
        "readable + result succeeded",
        AuditQuery(result="succeeded", readable=READABLE),
        None,
        {"route", "source_only", "destination_only"},
    ),
    ("readable + rare result", AuditQuery(result="failed", readable=READABLE), None, {"result"}),
    ("story", RepositoryQuery(repository="team/app"), None, {"repository"}),
    ("story, next page", RepositoryQuery(repository="team/app"), CURSOR, {"repository"}),
    (
        "story + readable",
        RepositoryQuery(repository="team/app", readable=READABLE),
        None,
        {"repository"},
    ),
]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    import asyncio

    async def fill() -> None:
        async with await AuditStore.open(db_url) as store:
            for n in range(20):
                await store.record(
                    AuditRecord(
                        request_id=f"r{n}",
                        time=T0 + timedelta(minutes=n),
                        action="promote",
                        result="succeeded" if n % 3 else "failed",
                        subject="alice" if n % 2 else "bob",
                        email="alice@example.com",
                        kind="image",
                        reference=f"team/app:v{n}",
                        source_env="dev",
                        destination_env="staging" if n % 2 else "prod",
                    )
                )

    asyncio.run(fill())
    made = create_engine(db_url)
    try:
        yield made
    finally:
        made.dispose()


def plan(engine: Engine, statement: Any) -> list[tuple[int, int, str]]:
    """The plan's (id, parent, line): SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN."""
    dialect = sqlite.dialect() if engine.dialect.name == "sqlite" else postgresql.dialect()
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            return [(int(row[0]), int(row[1]), str(row[-1])) for row in rows]
        connection.exec_driver_sql("SET enable_seqscan = off")
        return [(0, 0, str(row[0])) for row in connection.exec_driver_sql("EXPLAIN " + sql)]


@pytest.mark.parametrize(("name", "query", "cursor", "indexes"), CASES, ids=[c[0] for c in CASES])
def test_each_filter_reads_its_index(
    engine: Engine,
    name: str,
    query: AuditQuery,
    cursor: AuditCursor | None,
    indexes: set[str],
) -> None:
    lines = plan(engine, query.select(cursor, 51))
    text = "\n".join(line for _, _, line in lines)
    if engine.dialect.name == "postgresql":
        assert "Seq Scan on audit_events" not in text, text
        return
    # The page's rows, read by id once the branches have chosen them, are no search.
    reads = [
        (parent, line)
        for _, parent, line in lines
        if "audit_events" in line and "PRIMARY KEY" not in line
    ]
    assert reads, text
    for parent, line in reads:
        # SEARCH: a lookup by the index's leading column(s); SCAN would read every row.
        assert line.startswith("SEARCH audit_events USING"), text
        used = line.split(" INDEX ix_audit_events_", 1)[1].split(" ", 1)[0]
        assert used in indexes, text
        # Read newest first from the index: no sort of the matching rows beside the read (a
        # union's parts may sort the page each gives, under another parent).
        sorts = [p for _, p, other in lines if other.startswith("USE TEMP B-TREE")]
        assert parent not in sorts, text


def test_newest_page_stops_after_the_page_on_the_time_index(engine: Engine) -> None:
    # No filter: the time index newest first, no sort (and, on PostgreSQL, no table scan).
    text = "\n".join(line for _, _, line in plan(engine, AuditQuery().select(None, 51)))
    if engine.dialect.name == "sqlite":
        assert "SCAN audit_events USING INDEX ix_audit_events_time" in text, text
        assert "TEMP B-TREE" not in text, text
    else:
        assert "Seq Scan on audit_events" not in text, text


REFERENCES = [
    ("promote", "image", "team/app:v1"),
    ("promote", "image", "team/app@sha256:" + "ab" * 32),
    ("promote", None, "team/app:v2@sha256:" + "cd" * 32),
    ("promote", "image", "team/application:v1"),
    ("promote", "spa", "spa:team/app:v1"),
    ("promote", "image", "spa:x"),
    ("promote", None, "team/app"),
    ("promote", None, ":v1"),
    ("promote", None, "x" * 300 + ":v1"),
    ("promote", "image", "registry.example:5000/team/app:v1"),
    ("auth_check", None, "team/app:v1"),
    ("promote", None, None),
]


async def test_0012_fills_the_repository_of_older_rows_as_the_store_does(db_url: str) -> None:
    from sqlalchemy import text

    from imgctl.store._history import repository_of

    from ..support.postgres import migration_head
    from .test_store import _migrate_to

    _migrate_to(db_url, "0011")
    made = create_engine(db_url)
    try:
        with made.begin() as connection:
            for n, (action, kind, reference) in enumerate(REFERENCES):
                connection.execute(
                    text(
                        "INSERT INTO audit_events (request_id, time, action, result, groups, "
                        "kind, reference) VALUES (:r, :t, :a, 'succeeded', '[]', :k, :ref)"
                    ),
                    {
                        "r": f"r{n}",
                        "t": T0.replace(tzinfo=None),
                        "a": action,
                        "k": kind,
                        "ref": reference,
                    },
                )
    finally:
        made.dispose()
    async with await AuditStore.open(db_url) as store:
        page = await store.search(RepositoryQuery(repository="team/app"))
        for n, (action, kind, reference) in enumerate(REFERENCES):
            await store.record(
                AuditRecord(
                    request_id=f"new{n}",
                    time=T0,
                    action=action,
                    result="succeeded",
                    kind=kind,
                    reference=reference,
                )
            )
    assert sorted(r.request_id for r in page.records) == ["r0", "r1", "r2"]
    made = create_engine(db_url)
    try:
        with made.connect() as connection:
            rows = connection.execute(
                text("SELECT request_id, repository FROM audit_events ORDER BY id")
            ).all()
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        made.dispose()
    assert version == migration_head()
    # The migration's SQL and repository_of agree on every reference, old rows and new.
    expected = [repository_of(a, k, ref) for a, k, ref in REFERENCES]
    assert [r for _, r in rows[: len(REFERENCES)]] == expected
    assert [r for _, r in rows[len(REFERENCES) :]] == expected
    assert expected[:4] == ["team/app", "team/app", "team/app", "team/application"]
    assert expected[9] == "registry.example"
    assert expected[4:9] == [None] * 5
