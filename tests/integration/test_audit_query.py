"""AuditStore.search / export / count_matching on a real SQLite file and the machine's PostgreSQL.

The audit trail's reading side (issue 20 item 3): filters, newest first, keyset cursors, the
caller's readable environments, bounded exports.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from imgctl.errors import UsageError
from imgctl.store import (
    MAX_PAGE,
    AuditCursor,
    AuditQuery,
    AuditRecord,
    AuditStore,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def event(
    request_id: str,
    minutes: float,
    *,
    result: str = "succeeded",
    action: str = "promote",
    subject: str | None = "sub-alice",
    email: str | None = "alice@example.com",
    source: str | None = "dev",
    destination: str | None = "prod",
) -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        time=T0 + timedelta(minutes=minutes),
        action=action,
        result=result,
        subject=subject,
        email=email,
        groups=("engineering@example.com",),
        kind="image" if action == "promote" else None,
        reference="dev.example.com/team/app:v1" if action == "promote" else None,
        source_env=source,
        destination_env=destination,
        digest="sha256:" + "ab" * 32 if action == "promote" else None,
    )


# Oldest first as written; two rows share one instant (r3, r4) so that the id breaks the tie.
EVENTS = [
    event("r1", 0),
    event("r2", 1, result="denied", subject="sub-bob", email="bob@example.com"),
    event("r3", 2, source="int", destination="prod"),
    event("r4", 2, result="failed", source="dev", destination="int"),
    event("r5", 3, action="auth_check", source=None, destination=None),
    event("r6", 4, result="invalid", source="dev", destination="staging", email=None),
    event("r7", 5, subject="sub-bob", email="bob@example.com", source="int", destination="prod"),
]


@pytest.fixture
async def audit(db_url: str) -> AsyncIterator[AuditStore]:
    store = await AuditStore.open(db_url)
    try:
        for record in EVENTS:
            await store.record(record)
        yield store
    finally:
        await store.aclose()


async def ids(store: AuditStore, query: AuditQuery, limit: int = MAX_PAGE) -> list[str]:
    page = await store.search(query, limit=limit)
    assert page.next_cursor is None
    return [record.request_id for record in page.records]


async def test_newest_first_and_records_whole(audit: AuditStore) -> None:
    page = await audit.search(AuditQuery())
    assert [r.request_id for r in page.records] == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]
    assert page.records[-1] == EVENTS[0]
    assert page.next_cursor is None


async def test_each_filter(audit: AuditStore) -> None:
    # user: the subject or the email
    assert await ids(audit, AuditQuery(user="bob@example.com")) == ["r7", "r2"]
    assert await ids(audit, AuditQuery(user="sub-bob")) == ["r7", "r2"]
    assert await ids(audit, AuditQuery(user="sub-alice")) == ["r6", "r5", "r4", "r3", "r1"]
    assert await ids(audit, AuditQuery(user="nobody")) == []
    # environment: the source or the destination
    assert await ids(audit, AuditQuery(environment="int")) == ["r7", "r4", "r3"]
    assert await ids(audit, AuditQuery(environment="staging")) == ["r6"]
    assert await ids(audit, AuditQuery(result="denied")) == ["r2"]
    assert await ids(audit, AuditQuery(result="succeeded")) == ["r7", "r5", "r3", "r1"]
    # since inclusive, until exclusive, any offset
    plus_two = timezone(timedelta(hours=2))
    since = (T0 + timedelta(minutes=2)).astimezone(plus_two)
    assert await ids(audit, AuditQuery(since=since)) == ["r7", "r6", "r5", "r4", "r3"]
    assert await ids(audit, AuditQuery(until=since)) == ["r2", "r1"]
    window = AuditQuery(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert await ids(audit, window) == ["r4", "r3", "r2"]
    both = AuditQuery(user="alice@example.com", environment="prod", result="succeeded")
    assert await ids(audit, both) == ["r3", "r1"]
    # A row whose subject and email both match, or both environments, is shown (and counted)
    # once, though two branches of the query find it (issue 21 target 6).
    twice = AuditQuery(user="sub-alice", environment="dev")
    assert await ids(audit, twice) == ["r6", "r4", "r1"]
    assert await audit.count_matching(twice, up_to=10) == 3
    assert await audit.count_matching(AuditQuery(user="bob@example.com"), up_to=10) == 2
    assert await audit.count_matching(AuditQuery(environment="int"), up_to=2) == 2


async def test_readable_environments(audit: AuditStore) -> None:
    assert await ids(audit, AuditQuery(readable=frozenset({"dev", "int", "prod"}))) == [
        "r7",
        "r4",
        "r3",
        "r2",
        "r1",
    ]
    # Every environment a row names must be readable: dev -> prod is not a dev-only row.
    assert await ids(audit, AuditQuery(readable=frozenset({"dev", "int"}))) == ["r4"]
    assert await ids(audit, AuditQuery(readable=frozenset())) == []
    narrowed = AuditQuery(environment="prod").restricted_to({"int", "prod"})
    assert await ids(audit, narrowed) == ["r7", "r3"]
    assert narrowed.restricted_to({"prod"}).readable == frozenset({"prod"})
    assert AuditQuery().restricted_to(None).readable is None


async def test_cursor_pages_cover_everything_once(audit: AuditStore) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await audit.search(AuditQuery(), limit=2, cursor=cursor)
        pages += 1
        seen += [r.request_id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if pages == 2:
            # Written between pages, newer than everything: page 3 goes on from r3 regardless.
            await audit.record(event("late", 60))
    assert seen == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]
    assert pages == 4
    # A page exactly as long as what is left says there is no next one.
    page = await audit.search(AuditQuery(user="bob@example.com"), limit=2)
    assert [r.request_id for r in page.records] == ["r7", "r2"]
    assert page.next_cursor is None


async def test_cursor_with_filters_and_tie(audit: AuditStore) -> None:
    query = AuditQuery(environment="int")
    first = await audit.search(query, limit=2)
    assert [r.request_id for r in first.records] == ["r7", "r4"]
    assert first.next_cursor is not None
    decoded = AuditCursor.decode(first.next_cursor)
    assert decoded.time == T0 + timedelta(minutes=2)
    second = await audit.search(query, limit=2, cursor=first.next_cursor)
    # r3 shares r4's instant: the id decides, and it is not lost between the pages.
    assert [r.request_id for r in second.records] == ["r3"]
    assert second.next_cursor is None


async def test_bad_cursor_and_limit(audit: AuditStore) -> None:
    good = AuditCursor(T0, 7).encode()
    assert AuditCursor.decode(good) == AuditCursor(T0, 7)
    forged = [
        "",
        "not a cursor",
        "x" * 500,
        "é",
        base64.urlsafe_b64encode(b"a1:abc:1").decode(),
        base64.urlsafe_b64encode(b"zz:0:1").decode(),
        base64.urlsafe_b64encode(b"a1:99999999999999999999999:1").decode(),
        base64.urlsafe_b64encode(b"a1:0:-1").decode(),
        good[:-3],
    ]
    for text in forged:
        with pytest.raises(UsageError, match="cursor"):
            await audit.search(AuditQuery(), cursor=text)
    for limit in (0, -1, MAX_PAGE + 1):
        with pytest.raises(ValueError, match="limit"):
            await audit.search(AuditQuery(), limit=limit)
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditQuery(since=datetime(2025, 1, 1))


async def test_export_walks_pages_and_stops_at_the_bound(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        total = MAX_PAGE + 30
        for i in range(total):
            await store.record(event(f"e{i:04}", i / 60))
        newest_first = [f"e{i:04}" for i in reversed(range(total))]
        everything = [r.request_id async for r in store.export(AuditQuery())]
        assert everything == newest_first
        bounded = [r.request_id async for r in store.export(AuditQuery(), max_rows=MAX_PAGE + 5)]
        assert bounded == newest_first[: MAX_PAGE + 5]
        assert await store.count_matching(AuditQuery(), up_to=total + 1) == total
        assert await store.count_matching(AuditQuery(), up_to=10) == 10
        since = AuditQuery(since=T0 + timedelta(seconds=total - 3))
        assert [r.request_id async for r in store.export(since)] == newest_first[:3]


async def test_0009_indexes_the_filters_and_keeps_rows(db_url: str) -> None:
    from sqlalchemy import create_engine, inspect, text

    from ..support.postgres import migration_head
    from .test_store import _migrate_to

    # A database of the imgctl before the audit page (revision 0008) with one row in it.
    _migrate_to(db_url, "0008")
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_events (request_id, time, action, result, groups, email, "
                    "destination_env) VALUES ('before', :time, 'promote', 'succeeded', '[]', "
                    "'old@example.com', 'prod')"
                ),
                {"time": T0.replace(tzinfo=None)},
            )
    finally:
        engine.dispose()
    async with await AuditStore.open(db_url) as store:
        page = await store.search(AuditQuery(user="old@example.com", environment="prod"))
    assert [r.request_id for r in page.records] == ["before"]
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("audit_events")}
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    # 0012 gave each filter's index the time and id after it (0009's email index included).
    assert indexes["ix_audit_events_email"] == ["email", "time", "id"]
    assert indexes["ix_audit_events_source_env"] == ["source_env", "time", "id"]
    assert version == migration_head()
