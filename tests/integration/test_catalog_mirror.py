"""Admission's in-memory catalog (CatalogStore.follow) on a real SQLite file and PostgreSQL.

The mirror is written by one store and followed by another, as two replicas (two engines, two
sets of connections) of imgctl on one database. Waiting for the feed is bounded by a deadline,
not timed: each test asserts what is answered, and where from (memory or the database).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from imgctl.store import CatalogStore
from imgctl.store._catalog_mirror import CatalogMirror

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.fixture
async def replicas(db_url: str) -> AsyncIterator[tuple[CatalogStore, CatalogStore]]:
    """(here, other): ``here`` follows the feed, ``other`` writes as another replica."""
    here, other = await CatalogStore.open(db_url), await CatalogStore.open(db_url)
    try:
        yield here, other
    finally:
        await here.aclose()
        await other.aclose()


async def promote(store: CatalogStore, digest: str, name: str, tags: list[str]) -> None:
    await store.record_promotion(
        digest=digest, name=name, tags=tags, environment="prod", promoted_by=None, source=None
    )


async def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``seconds`` (a deadline)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what} never happened"
        await asyncio.sleep(0.02)


def admission_queries(store: CatalogStore) -> list[str]:
    """Every admission lookup ``store`` sends to its database from now on (live list)."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "catalog_images.id IN" in statement or "catalog_images.name IN" in statement:
            sent.append(statement)

    event.listen(store._engine, "before_cursor_execute", seen)
    return sent


async def test_new_questions_are_answered_from_memory_without_a_query(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    for i in range(200):
        await promote(other, f"sha256:{i:064x}", f"reg.io/app{i % 20}", [f"v{i}"])
    await here.follow()
    queries = admission_queries(here)
    digests = [("prod", f"reg.io/app{i % 20}", f"sha256:{i:064x}", None) for i in range(200)]
    tags = [("prod", f"reg.io/app{i % 20}", None, f"v{i}") for i in range(200)]
    answers = await asyncio.gather(*(here.promoted(*key) for key in digests + tags))
    assert all(answers)
    assert all(here.known(*key) for key in digests + tags)
    assert queries == []  # 400 questions never asked before, none of them sent to the database
    # What the mirror does not hold is asked of the database (and denied when not there).
    assert await here.promoted("prod", "reg.io/app0", DIGEST_A) is False
    assert await here.promoted("prod", "reg.io/app1", None, "v0") is False  # v0 is app0's
    assert await here.promoted("stage", "reg.io/app0", "sha256:" + f"{0:064x}") is False
    assert len(queries) == 3


async def test_a_promotion_elsewhere_is_admitted_at_once_and_reaches_memory(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await here.follow()
    mirror = here.mirror
    assert mirror is not None
    assert mirror.revision == 0
    await promote(other, DIGEST_A, "reg.io/app", ["v1"])
    # Not in memory yet: the database is asked, so a new promotion is never refused.
    assert await here.promoted("prod", "reg.io/app", DIGEST_A) is True
    await until(lambda: mirror.revision == 1, "reading the promotion from the feed")
    assert mirror.answers()
    assert here.known("prod", "reg.io/app", DIGEST_A, None) is True
    assert here.known("prod", "reg.io/app", None, "v1") is True


async def test_a_withdrawal_elsewhere_stops_admitting_from_memory(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await promote(other, DIGEST_A, "reg.io/app", ["v1", "stable"])
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    assert here.known("prod", "reg.io/app", DIGEST_A, None) is True
    assert here.known("prod", "reg.io/app", None, "stable") is True
    mirror = here.mirror
    assert mirror is not None
    # imgctl catalog rm on another replica, and a PUT that takes a tag away there.
    assert await other.delete(DIGEST_B, "prod", name="reg.io/app") == 1
    await other.put(DIGEST_A, "reg.io/app", ["v1"], environment="prod")
    revision = mirror.revision
    assert revision is not None
    await until(lambda: mirror.revision == revision + 2, "reading the withdrawals")
    assert mirror.answers()
    assert here.known("prod", "reg.io/app", DIGEST_B, None) is False
    assert here.known("prod", "reg.io/app", None, "v2") is False
    assert here.known("prod", "reg.io/app", None, "stable") is False
    assert here.known("prod", "reg.io/app", None, "v1") is True
    assert await here.promoted("prod", "reg.io/app", DIGEST_B) is False
    assert await here.promoted("prod", "reg.io/app", None, "stable") is False
    # Promoted again: admitted at once.
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    assert await here.promoted("prod", "reg.io/app", DIGEST_B) is True


async def test_a_write_through_this_store_is_seen_at_once(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, _ = replicas
    await promote(here, DIGEST_A, "reg.io/app", ["v1"])
    await here.follow()
    assert here.known("prod", "reg.io/app", DIGEST_A, None) is True
    assert await here.delete(DIGEST_A) == 1
    # No waiting for the feed: the mirror does not answer until a read after the write.
    assert here.known("prod", "reg.io/app", DIGEST_A, None) is False
    assert await here.promoted("prod", "reg.io/app", DIGEST_A) is False


async def test_a_feed_that_cannot_be_read_hands_every_question_to_the_database(
    db_url: str, replicas: tuple[CatalogStore, CatalogStore]
) -> None:
    here, _ = replicas
    await promote(here, DIGEST_A, "reg.io/app", ["v1"])
    await promote(here, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    mirror = here.mirror
    assert mirror is not None
    mirror.POLL_SECONDS, mirror.MAX_STALENESS = 0.05, 0.5
    assert here.known("prod", "reg.io/app", DIGEST_A, None) is True
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE catalog_feed RENAME TO catalog_feed_away"))
            # Withdrawn behind the feed's back: only the database knows.
            connection.execute(text("DELETE FROM catalog_images WHERE id = :id"), {"id": DIGEST_A})
        await until(lambda: not mirror.answers(), "the mirror giving up on its feed")
        assert here.known("prod", "reg.io/app", DIGEST_A, None) is False
        assert await here.promoted("prod", "reg.io/app", DIGEST_A) is False
        assert await here.promoted("prod", "reg.io/app", DIGEST_B) is True  # asked, not remembered
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE catalog_feed_away RENAME TO catalog_feed"))
        # Back: everything is read again, so what changed meanwhile is not missed.
        await until(mirror.answers, "the mirror following its feed again")
        assert here.known("prod", "reg.io/app", DIGEST_A, None) is False
        assert here.known("prod", "reg.io/app", DIGEST_B, None) is True
    finally:
        engine.dispose()


async def test_a_catalog_too_large_to_keep_is_asked_of_the_database(
    replicas: tuple[CatalogStore, CatalogStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, other = replicas
    for i in range(3):
        await promote(other, f"sha256:{i:064x}", "reg.io/app", [f"v{i}"])
    monkeypatch.setattr(CatalogMirror, "MAX_ENTRIES", 2)
    await here.follow()
    assert here.mirror is not None
    assert not here.mirror.answers()
    assert len(here.mirror) == 0
    queries = admission_queries(here)
    assert await here.promoted("prod", "reg.io/app", f"sha256:{1:064x}") is True
    assert len(queries) == 1


async def test_every_write_moves_the_feed_once_and_names_what_it_removed(
    db_url: str, store: CatalogStore
) -> None:
    await promote(store, DIGEST_A, "reg.io/app", ["v1"])
    await promote(store, DIGEST_B, "reg.io/app", ["v1"])  # takes v1 off DIGEST_A: one revision
    await store.put(DIGEST_A, "reg.io/other", ["x"], environment="prod")
    assert await store.delete(DIGEST_A) == 2  # both repositories' entries
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT revision FROM catalog_feed")).scalar() == 4
            revisions = dict(
                connection.execute(text("SELECT id, revision FROM catalog_images")).all()
            )
            removed = connection.execute(
                text("SELECT revision, environment, name, id FROM catalog_removals ORDER BY name")
            ).all()
    finally:
        engine.dispose()
    assert revisions == {DIGEST_B: 2}
    assert [tuple(row) for row in removed] == [
        (4, "prod", "reg.io/app", DIGEST_A),
        (4, "prod", "reg.io/other", DIGEST_A),
    ]
