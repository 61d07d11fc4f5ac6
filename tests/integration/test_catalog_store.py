"""imgctl.store.CatalogStore against a real SQLite file and the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, inspect, text

from imgctl.errors import StoreError
from imgctl.store import AuditStore, CatalogImage, CatalogStore
from imgctl.store._schema import METADATA

from ..support.postgres import PG_DSN, PG_URL, migration_head

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


async def promote(
    store: CatalogStore, digest: str, name: str, tags: list[str], environment: str = "prod"
) -> CatalogImage:
    """A promotion with no source or promoter, the way most tests here record one."""
    return await store.record_promotion(
        digest=digest,
        name=name,
        tags=tags,
        environment=environment,
        promoted_by=None,
        source=None,
    )


# --- schema -------------------------------------------------------------------------------


async def test_both_stores_migrate_to_the_same_head(db_url: str) -> None:
    await (await CatalogStore.open(db_url)).aclose()
    await (await AuditStore.open(db_url)).aclose()
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            assert {"alembic_version", "audit_events", "catalog_images"} <= set(
                inspector.get_table_names()
            )
            indexes = {str(index["name"]) for index in inspector.get_indexes("catalog_images")}
            assert {"ix_catalog_images_name", "ix_catalog_images_updated_at"} <= indexes
            assert inspector.get_pk_constraint("catalog_images")["constrained_columns"] == [
                "id",
                "environment",
                "name",
            ]
            versions = list(
                connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
            assert versions == [migration_head()]
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, METADATA) == []
    finally:
        engine.dispose()


async def test_audit_store_opened_first_also_creates_the_catalog(db_url: str) -> None:
    await (await AuditStore.open(db_url)).aclose()
    async with await CatalogStore.open(db_url) as catalog:
        assert await catalog.list() == []


# --- imagelist operations -----------------------------------------------------------------


async def test_put_creates_then_updates_only_tags(store: CatalogStore) -> None:
    image, created = await store.put("abc", "quay.io/foo/nginx", ["latest", "v1.0"])
    assert created
    assert (image.id, image.name, image.tags, image.environment) == (
        "abc",
        "quay.io/foo/nginx",
        ("latest", "v1.0"),
        "",
    )
    assert image.created_at == image.updated_at
    assert image.created_at.tzinfo is not None

    updated, created = await store.put("abc", "some/other-name", ["v2"])
    assert not created
    assert updated.name == "quay.io/foo/nginx"  # imagelist quirk: only tags change
    assert updated.tags == ("v2",)
    assert updated.created_at == image.created_at
    assert updated.updated_at > image.updated_at

    cleared, _ = await store.put("abc", "quay.io/foo/nginx", [])
    assert cleared.tags == ()
    assert await store.get("abc") == cleared


async def test_get_unknown_and_by_environment(store: CatalogStore) -> None:
    assert await store.get("nope") is None
    await store.put("id1", "app", ["a"], environment="dev")
    await asyncio.sleep(0.01)
    await store.put("id1", "app", ["b"], environment="prod")
    newest = await store.get("id1")
    assert newest is not None
    assert newest.environment == "prod"
    dev = await store.get("id1", "dev")
    assert dev is not None
    assert dev.tags == ("a",)
    assert await store.get("id1", "") is None


async def test_ids_with_slashes_and_at_signs(store: CatalogStore) -> None:
    weird = "registry.example.com/team/app@" + DIGEST_A
    await store.put(weird, "registry.example.com/team/app", ["v1"])
    got = await store.get(weird)
    assert got is not None
    assert got.id == weird


async def test_list_filters_and_sorting(store: CatalogStore) -> None:
    await store.put("b-id", "zeta", ["v1", "latest"])
    await asyncio.sleep(0.01)
    await store.put("a-id", "alpha", ["v2"])
    await asyncio.sleep(0.01)
    await store.put("c-id@" + DIGEST_A, "alpha", ["100%_x"], environment="prod")
    await asyncio.sleep(0.01)
    await store.put("b-id", "ignored", ["v1"])  # updated last

    assert [i.id for i in await store.list()] == ["b-id", "c-id@" + DIGEST_A, "a-id"]
    assert [i.id for i in await store.list(sort="created_at")] == [
        "c-id@" + DIGEST_A,
        "a-id",
        "b-id",
    ]
    assert [i.id for i in await store.list(sort="id")] == ["c-id@" + DIGEST_A, "b-id", "a-id"]
    assert [i.name for i in await store.list(sort="name")] == ["zeta", "alpha", "alpha"]
    assert {i.id for i in await store.list(name="alpha")} == {"a-id", "c-id@" + DIGEST_A}
    assert await store.list(name="alp") == []
    assert [i.id for i in await store.list(environment="prod")] == ["c-id@" + DIGEST_A]
    assert {i.id for i in await store.list(environment="")} == {"a-id", "b-id"}
    assert [i.id for i in await store.list(tag="v1")] == ["b-id"]
    assert await store.list(tag="v") == []
    assert [i.id for i in await store.list(tag="100%_x")] == ["c-id@" + DIGEST_A]
    assert await store.list(tag="100%%x") == []
    assert [i.id for i in await store.list(digest=DIGEST_A)] == ["c-id@" + DIGEST_A]
    assert await store.list(digest=DIGEST_B) == []
    assert await store.list(name="alpha", environment="prod", tag="v2") == []
    with pytest.raises(ValueError, match="sort"):
        await store.list(sort="tags")


async def test_delete(store: CatalogStore) -> None:
    await store.put("x", "app", [], environment="dev")
    await store.put("x", "app", [], environment="prod")
    await store.put("y", "app", [])
    assert await store.delete("unknown") == 0
    assert await store.delete("x", "dev") == 1
    assert [i.environment for i in await store.list(name="app") if i.id == "x"] == ["prod"]
    assert await store.delete("x") == 1
    assert [i.id for i in await store.list()] == ["y"]


async def test_tags_must_be_a_sequence_of_strings(store: CatalogStore) -> None:
    with pytest.raises(TypeError):
        await store.put("x", "app", "latest")
    with pytest.raises(TypeError):
        await store.put("x", "app", [1])  # type: ignore[list-item]


async def test_concurrent_puts_of_one_id_create_once(store: CatalogStore) -> None:
    results = await asyncio.gather(*(store.put("same", "app", [f"t{i}"]) for i in range(10)))
    assert sum(created for _, created in results) == 1
    assert len(await store.list()) == 1


# --- promotions and admission -------------------------------------------------------------


async def test_record_promotion_upserts_and_unions_tags(store: CatalogStore) -> None:
    first = await store.record_promotion(
        digest=DIGEST_A,
        name="registry.prod/app",
        tags=["v1", "latest"],
        environment="prod",
        promoted_by="alice@example.com",
        source="registry.dev/app:v1",
    )
    assert first.tags == ("v1", "latest")
    assert first.promoted_at is not None
    assert first.as_json()["environment"] == "prod"
    assert first.as_json()["promoted_by"] == "alice@example.com"

    second = await store.record_promotion(
        digest=DIGEST_A,
        name="registry.prod/app",
        tags=["latest", "v1.1", "v1.1"],
        environment="prod",
        promoted_by="bob@example.com",
        source=None,
    )
    assert second.tags == ("v1", "latest", "v1.1")
    assert (second.name, second.promoted_by, second.source) == (
        "registry.prod/app",
        "bob@example.com",
        None,
    )
    assert second.created_at == first.created_at
    assert second.promoted_at is not None
    assert second.promoted_at > first.promoted_at
    other = await promote(store, DIGEST_A, "registry.stage/app", ["rc"], environment="stage")
    assert other.tags == ("rc",)
    assert len(await store.list(digest=DIGEST_A)) == 2


async def test_promoted_lookups(store: CatalogStore) -> None:
    await promote(store, DIGEST_A, "registry.prod/app", ["v1"])
    assert await store.promoted("prod", name="registry.prod/app", digest=DIGEST_A)
    assert await store.promoted("prod", name="registry.prod/app", tag="v1")
    assert await store.promoted("prod", name="registry.prod/app", digest=DIGEST_B, tag="v1")
    assert not await store.promoted("prod", name="registry.prod/app", digest=DIGEST_B)
    assert not await store.promoted("prod", name="registry.prod/app", tag="v2")
    assert not await store.promoted("prod", name="registry.prod/other", digest=DIGEST_A)
    assert not await store.promoted("stage", name="registry.prod/app", digest=DIGEST_A)
    assert not await store.promoted("prod", name="registry.prod/app")
    assert await store.promoted("prod", "registry.prod/app", None, "v1")  # positional lookup


async def test_known_answers_only_recent_yeses_from_memory(store: CatalogStore) -> None:
    await promote(store, DIGEST_A, "registry.prod/app", ["v1"])
    # Nothing asked yet: not known, although promoted.
    assert store.known("prod", "registry.prod/app", DIGEST_A, None) is False
    assert await store.promoted("prod", "registry.prod/app", DIGEST_A, None) is True
    assert store.known("prod", "registry.prod/app", DIGEST_A, None) is True
    # A "no" is never remembered, and other questions about the same image are not answered.
    assert await store.promoted("prod", "registry.prod/app", None, "v2") is False
    assert store.known("prod", "registry.prod/app", None, "v2") is False
    assert store.known("prod", "registry.prod/app", None, "v1") is False
    assert store.known("stage", "registry.prod/app", DIGEST_A, None) is False
    # A write through this store forgets every answer.
    await store.put("other", "registry.prod/other", ["x"])
    assert store.known("prod", "registry.prod/app", DIGEST_A, None) is False


async def test_known_expires_after_two_ttls(db_url: str) -> None:
    store = await CatalogStore.open(db_url)
    store.POSITIVE_TTL = 0.1
    try:
        await promote(store, DIGEST_A, "reg.io/app", [])
        assert await store.promoted("prod", "reg.io/app", DIGEST_A) is True
        await asyncio.sleep(0.25)  # past fresh and stale: must be asked again
        assert store.known("prod", "reg.io/app", DIGEST_A, None) is False
    finally:
        await store.aclose()


async def test_repeated_lookups_do_not_each_ask_the_database(store: CatalogStore) -> None:
    """1,000 admission lookups of 60 distinct images ask the database at most once per image.

    The property that keeps admission fast under load (its speed is bench/catalog.py's): the
    store batches concurrent questions and remembers answers, so round-trips are counted, not
    timed.
    """
    from sqlalchemy import event

    for i in range(50):
        await promote(store, f"sha256:{i:064x}", f"registry.prod/app{i % 5}", [f"v{i}"])
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        answers = await asyncio.gather(
            *(
                store.promoted(
                    "prod", name=f"registry.prod/app{i % 5}", digest=f"sha256:{i % 60:064x}"
                )
                for i in range(1000)
            )
        )
    finally:
        event.remove(store._engine, "before_cursor_execute", count)
    assert answers == [i % 60 < 50 for i in range(1000)]
    assert 1 <= len(statements) <= 60, f"{len(statements)} statements for 60 distinct images"


# --- json, ping, errors -------------------------------------------------------------------


def test_as_json_matches_imagelist() -> None:
    t = datetime(2017, 10, 27, 16, 51, 6, 698062, tzinfo=UTC)
    image = CatalogImage(
        id="b5", name="quay.io/foo/nginx", tags=("latest",), created_at=t, updated_at=t
    )
    assert image.as_json() == {
        "created_at": "2017-10-27T16:51:06.698062Z",
        "updated_at": "2017-10-27T16:51:06.698062Z",
        "id": "b5",
        "name": "quay.io/foo/nginx",
        "tags": ["latest"],
    }


async def test_ping_and_closed_store(db_url: str) -> None:
    catalog = await CatalogStore.open(db_url)
    await catalog.ping()
    await catalog.aclose()
    with pytest.raises(StoreError, match="catalog store"):
        await catalog.ping()


async def test_ping_raises_when_database_goes_away(tmp_path: Path) -> None:
    schema = f"imgctl_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        # Its connections carry a name of their own: only they are terminated, not those of
        # the servers other tests (or a suite running beside this one) hold on this database.
        name = f"imgctl-{schema}"
        catalog = await CatalogStore.open(
            f"{PG_URL}?options=-csearch_path%3D{schema}&application_name={name}"
        )
        try:
            await catalog.ping()
            with psycopg.connect(PG_DSN, autocommit=True) as connection:
                terminated = connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
            assert terminated, "the store's connection was not found to terminate"
            # pool_pre_ping reconnects: a dropped connection is not an outage.
            await catalog.ping()
        finally:
            await catalog.aclose()
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    unreachable = await CatalogStore.open(f"sqlite:///{tmp_path}/db.sqlite")
    try:
        await unreachable.ping()
    finally:
        await unreachable.aclose()
    with pytest.raises(StoreError):
        await CatalogStore.open("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")


async def test_a_delete_by_another_replica_reaches_cached_answers_within_two_ttls(
    tmp_path: Path,
) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path}/state/imgctl.db"
    here, other = await CatalogStore.open(url), await CatalogStore.open(url)
    try:
        here.POSITIVE_TTL = 0.2
        await promote(here, DIGEST_A, "reg.io/app", ["v1"])
        assert await here.promoted("prod", "reg.io/app", DIGEST_A) is True
        assert await other.delete(DIGEST_A) == 1  # another replica withdraws it
        assert await here.promoted("prod", "reg.io/app", DIGEST_A) is True  # still cached
        await asyncio.sleep(0.25)
        # Stale: answered from the cache once more while the database is asked again.
        assert await here.promoted("prod", "reg.io/app", DIGEST_A) is True
        deadline = asyncio.get_running_loop().time() + 2
        while await here.promoted("prod", "reg.io/app", DIGEST_A):
            assert asyncio.get_running_loop().time() < deadline, "the withdrawal never arrived"
            await asyncio.sleep(0.05)
        # A "no" is never cached: promoting again is seen at once.
        await promote(other, DIGEST_A, "reg.io/app", ["v1"])
        assert await here.promoted("prod", "reg.io/app", DIGEST_A) is True
    finally:
        await here.aclose()
        await other.aclose()


async def test_batched_answers_agree_with_the_records(store: CatalogStore) -> None:
    for n, digest in enumerate((DIGEST_A, DIGEST_B)):
        await promote(store, digest, f"reg.io/app{n}", [f"v{n}", "stable", "50%_off"])
    # Look-alikes the LIKE pre-filter lets through and the exact check must refuse.
    await store.put("sha256:" + "c" * 64, "reg.io/app2", ["v10", "50x_off"], environment="prod")
    keys = [
        (env, f"reg.io/app{n}", digest, tag)
        for env in ("prod", "dev")
        for n in (0, 1, 2)
        for digest in (DIGEST_A, DIGEST_B, None)
        for tag in ("v0", "v1", "v", "stable", "nope", "50%_off", None)
        if digest is not None or tag is not None
    ]
    records = {
        (image.environment, image.name, value)
        for image in await store.list()
        for value in (image.id, *image.tags)
    }
    expected = [
        (env, name, digest) in records or (env, name, tag) in records
        for env, name, digest, tag in keys
    ]
    many = await store._submit(store._promoted_many, keys)
    assert [many[key] for key in keys] == expected
    assert 4 < sum(expected) < len(keys)  # the comparison covers both answers
    # One at a time (the first question of an idle store) gives the same answers.
    assert [await store.promoted(*key) for key in keys] == expected


async def test_concurrent_questions_share_batches(store: CatalogStore) -> None:
    for i in range(300):
        await promote(store, f"sha256:{i:064x}", f"reg.io/app{i}", [f"v{i % 7}"])
    batches: list[int] = []
    real = store._promoted_many

    def counting(keys: list[tuple[str, str, str | None, str | None]]) -> dict[Any, bool]:
        batches.append(len(keys))
        return real(keys)

    store._promoted_many = counting  # type: ignore[method-assign]
    questions = [("prod", f"reg.io/app{i}", f"sha256:{i:064x}", None) for i in range(400)]
    questions += [("prod", f"reg.io/app{i}", None, f"v{i % 7}") for i in range(0, 400, 2)]
    questions += questions[:50]  # asked twice at once: one answer for both
    answers = await asyncio.gather(*(store.promoted(*q) for q in questions))
    assert answers == [int(q[1].removeprefix("reg.io/app")) < 300 for q in questions]
    assert sum(batches) == 600  # every distinct question asked once
    assert len(batches) <= 3
    # Answered from memory now: no batch at all.
    assert all(store.known(*q) for q in questions if int(q[1][10:]) < 300)
    await asyncio.gather(*(store.promoted(*q) for q in questions[:300]))
    assert sum(batches) == 600


async def test_a_review_giving_up_does_not_cancel_the_others(store: CatalogStore) -> None:
    await store.put(DIGEST_A, "reg.io/app", ["v1"], environment="prod")
    release = threading.Event()
    real = store._promoted_many

    def slow(keys: list[tuple[str, str, str | None, str | None]]) -> dict[Any, bool]:
        release.wait(10)
        return real(keys)

    store._promoted_many = slow  # type: ignore[method-assign]
    impatient = asyncio.ensure_future(store.promoted("prod", "reg.io/app", DIGEST_A))
    patient = asyncio.ensure_future(store.promoted("prod", "reg.io/app", DIGEST_A))
    await asyncio.sleep(0.05)
    impatient.cancel()
    release.set()
    assert await patient is True
    assert impatient.cancelled()


async def test_a_failing_batch_fails_every_question_in_it(tmp_path: Path) -> None:
    store = await CatalogStore.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:

        def broken(keys: list[tuple[str, str, str | None, str | None]]) -> dict[Any, bool]:
            raise StoreError("catalog database: disk I/O error")

        store._promoted_many = broken  # type: ignore[method-assign]
        results = await asyncio.gather(
            store.promoted("prod", "reg.io/a", DIGEST_A),
            store.promoted("prod", "reg.io/b", None, "v1"),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [StoreError, StoreError]
    finally:
        await store.aclose()


async def test_an_answer_read_before_a_write_is_not_remembered(store: CatalogStore) -> None:
    await store.put(DIGEST_A, "reg.io/app", ["v1"], environment="prod")
    reading, release = threading.Event(), threading.Event()
    real = store._promoted_many

    def paused(keys: list[tuple[str, str, str | None, str | None]]) -> dict[Any, bool]:
        answers = real(keys)  # read "yes" ...
        reading.set()
        release.wait(10)  # ... while a DELETE commits
        return answers

    store._promoted_many = paused  # type: ignore[method-assign]
    question = asyncio.ensure_future(store.promoted("prod", "reg.io/app", DIGEST_A))
    await asyncio.to_thread(reading.wait, 10)
    store._promoted_many = real  # type: ignore[method-assign]
    assert await store.delete(DIGEST_A) == 1
    release.set()
    assert await question is True  # it was true when read
    assert store.known("prod", "reg.io/app", DIGEST_A) is False  # but not remembered
    assert await store.promoted("prod", "reg.io/app", DIGEST_A) is False


async def test_a_promotion_records_signed_and_attested(store: CatalogStore) -> None:
    # What the server said of its promotion: kept per entry, returned by the API's JSON.
    first = await store.record_promotion(
        digest=DIGEST_A,
        name="registry.prod/app",
        tags=["v1"],
        environment="prod",
        promoted_by="alice@example.com",
        source="registry.dev/app:v1",
        signed=True,
        attested=False,
    )
    assert (first.signed, first.attested) == (True, False)
    assert (first.as_json()["signed"], first.as_json()["attested"]) == (True, False)
    # Promoted again, attested now: the new word replaces the old.
    second = await store.record_promotion(
        digest=DIGEST_A,
        name="registry.prod/app",
        tags=["v1"],
        environment="prod",
        promoted_by="alice@example.com",
        source="registry.dev/app:v1",
        signed=True,
        attested=True,
    )
    assert (second.signed, second.attested) == (True, True)
    # A promotion that cannot tell (a server without a key, a recovered promotion) keeps them.
    third = await promote(store, DIGEST_A, "registry.prod/app", ["v1.0"])
    assert (third.signed, third.attested) == (True, True)
    [listed] = await store.list(environment="prod")
    assert (listed.signed, listed.attested) == (True, True)
    # Another environment's entry of the same digest knows nothing of it.
    other = await promote(store, DIGEST_A, "registry.stage/app", ["rc"], environment="stage")
    assert (other.signed, other.attested) == (None, None)
    assert "signed" not in other.as_json()
    assert "attested" not in other.as_json()
    # PUT /images writes neither.
    put, _ = await store.put(DIGEST_B, "registry.prod/app", ["v2"], environment="prod")
    assert (put.signed, put.attested) == (None, None)
