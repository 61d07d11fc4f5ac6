"""imgctl.store against a real SQLite file and the machine's PostgreSQL.

Every PostgreSQL test gets its own schema (``imgctl_test_<random>``, selected through the URL's
``options=-csearch_path=...``) and drops it afterwards. PostgreSQL being down is a failure, not a
skip: it is part of the machine.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from imgctl._internal.bounds import MAX_ERROR, MAX_REQUEST_ID, MAX_SUBJECT
from imgctl.errors import ImgctlError, StoreError, UsageError
from imgctl.store import (
    DATABASE_URL_ENV,
    MAX_INDEXED_CHARS,
    MAX_RECENT,
    AuditRecord,
    AuditStore,
    CatalogStore,
    database_url,
    redact_url,
)
from imgctl.store._schema import METADATA

from ..support.postgres import BACKENDS, migration_head, scratch_database

T0 = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with scratch_database(backend, tmp_path) as url:
        yield url


def inspect_db(url: str) -> tuple[set[str], set[str], list[str]]:
    """Return (tables, audit_events index names, alembic versions)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            tables = set(inspector.get_table_names())
            indexes = {str(index["name"]) for index in inspector.get_indexes("audit_events")}
            versions = list(
                connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
        return tables, indexes, versions
    finally:
        engine.dispose()


def full_record(request_id: str = "req-1", time: datetime = T0) -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        time=time,
        action="promote",
        result="failed",
        subject="CgZ6b8OrEgNzc2g",
        email="zoë.ünïcödé@例え.jp",
        groups=("engineering@example.com", "plateforme-équipe", "運用"),
        kind="image",
        reference="registry.dev.example.com/team/app:v1.2.3",
        source_env="dev",
        destination_env="prod",
        source_ref="registry.dev.example.com/team/app:v1.2.3",
        destination_ref="registry.prod.example.com/team/app:v1.2.3",
        digest="sha256:" + "ab" * 32,
        bytes_copied=123_456_789_012,
        duration_ms=4321,
        error_code="UNAVAILABLE",
        error="blob upload failed 🚀 " + "x" * 200_000,
        peer="ipv6:[::1]:54321",
        signed=False,
        signature_key="ab" * 32,
        signature_error="KMS key disabled 🔑 " + "y" * 5_000,
        attested=False,
        attestation_error="not attested: .att refused 📜 " + "z" * 5_000,
    )


def minimal_record(request_id: str, time: datetime = T0, result: str = "denied") -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        time=time,
        action="auth_check",
        result=result,
        subject=None,
        email=None,
        groups=(),
        kind=None,
        reference=None,
        source_env=None,
        destination_env=None,
        source_ref=None,
        destination_ref=None,
        digest=None,
        bytes_copied=None,
        duration_ms=None,
        error_code="PERMISSION_DENIED" if result == "denied" else None,
        error=None,
        peer=None,
        signed=None,
        signature_key=None,
        signature_error=None,
        attested=None,
        attestation_error=None,
    )


# --- schema and migrations ---------------------------------------------------------------


async def test_open_creates_schema_from_empty(db_url: str, backend: str, tmp_path: Path) -> None:
    store = await AuditStore.open(db_url)
    try:
        assert store.dialect == backend
        assert await store.count() == 0
    finally:
        await store.aclose()

    tables, indexes, versions = inspect_db(db_url)
    assert tables == {
        "alembic_version",
        "audit_events",
        "catalog_feed",
        "catalog_images",
        "catalog_removals",
        "issuer_jti",
        "promotion_intents",
        "scan_watches",
    }
    assert {
        "ix_audit_events_time",
        "ix_audit_events_request_id",
        "ix_audit_events_subject",
        "ix_audit_events_result",
    } <= indexes
    assert versions == [migration_head()]
    if backend == "sqlite":
        state = tmp_path / "state"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "imgctl.db").stat().st_mode) == 0o600
        engine = create_engine(db_url)
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            engine.dispose()


async def test_second_open_is_a_no_op_and_keeps_rows(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        await store.record(full_record())
    async with await AuditStore.open(db_url) as store:
        assert await store.count() == 1
        assert await store.recent() == [full_record()]
    _, _, versions = inspect_db(db_url)
    assert versions == [migration_head()]


async def test_models_match_migrations(db_url: str) -> None:
    await (await AuditStore.open(db_url)).aclose()
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, METADATA) == []
    finally:
        engine.dispose()


async def test_replicas_opening_together_in_one_process(db_url: str) -> None:
    stores = await asyncio.gather(*(AuditStore.open(db_url) for _ in range(3)))
    try:
        await asyncio.gather(
            *(store.record(minimal_record(f"r{i}")) for i, store in enumerate(stores))
        )
        assert [await store.count() for store in stores] == [3, 3, 3]
    finally:
        for store in stores:
            await store.aclose()
    _, _, versions = inspect_db(db_url)
    assert versions == [migration_head()]


async def test_schema_newer_than_this_imgctl_is_a_clear_error(db_url: str) -> None:
    await (await AuditStore.open(db_url)).aclose()
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="9999") as caught:
        await AuditStore.open(db_url)
    assert caught.value.hint
    assert "newer imgctl" in caught.value.hint


def _migrate_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from imgctl.store._store import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


async def test_0007_adds_the_signature_columns_and_keeps_older_rows(db_url: str) -> None:
    # A database of the imgctl before signing (revision 0006) with one promotion in it.
    _migrate_to(db_url, "0006")
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("audit_events")}
            assert "signed" not in columns
            connection.execute(
                text(
                    "INSERT INTO audit_events (request_id, time, action, result, groups) "
                    "VALUES ('before', :time, 'promote', 'succeeded', '[]')"
                ),
                {"time": T0.replace(tzinfo=None)},
            )
    finally:
        engine.dispose()
    signed = full_record("after", T0 + timedelta(seconds=1))
    async with await AuditStore.open(db_url) as store:
        await store.record(signed)
        after, before = await store.recent()
    assert (before.request_id, before.signed, before.signature_key) == ("before", None, None)
    assert before.signature_error is None
    assert (after.signed, after.signature_key) == (False, "ab" * 32)
    assert (after.signature_error or "").startswith("KMS key disabled 🔑 y")
    _, _, versions = inspect_db(db_url)
    assert versions == [migration_head()]


async def test_0008_adds_the_attestation_columns_and_keeps_older_rows(db_url: str) -> None:
    # A database of the imgctl before attestations (revision 0007): a signed promotion in the
    # audit table and a promoted image in the catalog.
    _migrate_to(db_url, "0007")
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            inspector = inspect(connection)
            assert "attested" not in {c["name"] for c in inspector.get_columns("audit_events")}
            assert "signed" not in {c["name"] for c in inspector.get_columns("catalog_images")}
            connection.execute(
                text(
                    "INSERT INTO audit_events (request_id, time, action, result, groups, signed) "
                    "VALUES ('before', :time, 'promote', 'succeeded', '[]', :signed)"
                ),
                {"time": T0.replace(tzinfo=None), "signed": True},
            )
            connection.execute(
                text(
                    "INSERT INTO catalog_images (id, environment, name, tags, created_at, "
                    "updated_at) VALUES (:id, 'prod', 'reg.io/app', '[\"v1\"]', :t, :t)"
                ),
                {"id": "sha256:" + "cd" * 32, "t": T0.replace(tzinfo=None)},
            )
    finally:
        engine.dispose()
    attested = full_record("after", T0 + timedelta(seconds=1))
    async with await AuditStore.open(db_url) as store:
        await store.record(attested)
        after, before = await store.recent()
    assert (before.request_id, before.signed, before.attested) == ("before", True, None)
    assert before.attestation_error is None
    assert after.attested is False
    assert (after.attestation_error or "").startswith("not attested: .att refused 📜 z")
    assert len(after.attestation_error or "") < 5_000  # bounded like the other errors
    async with await CatalogStore.open(db_url) as catalog:
        [entry] = await catalog.list()
    assert (entry.tags, entry.signed, entry.attested) == (("v1",), None, None)
    assert "signed" not in entry.as_json()
    _, _, versions = inspect_db(db_url)
    assert versions == [migration_head()]


async def test_attested_is_stored_as_a_boolean(db_url: str) -> None:
    records = [
        replace(minimal_record(name, T0 + timedelta(seconds=i)), attested=value)
        for i, (name, value) in enumerate((("yes", True), ("no", False), ("unknown", None)))
    ]
    async with await AuditStore.open(db_url) as store:
        for record in records:
            await store.record(record)
        recent = await store.recent()
    assert [(r.request_id, r.attested) for r in recent] == [
        ("unknown", None),
        ("no", False),
        ("yes", True),
    ]
    assert all(r.attested is None or isinstance(r.attested, bool) for r in recent)


async def test_signed_is_stored_as_a_boolean(db_url: str) -> None:
    records = [
        replace(minimal_record(name, T0 + timedelta(seconds=i)), signed=value)
        for i, (name, value) in enumerate((("yes", True), ("no", False), ("unknown", None)))
    ]
    async with await AuditStore.open(db_url) as store:
        for record in records:
            await store.record(record)
        recent = await store.recent()
    assert [(r.request_id, r.signed) for r in recent] == [
        ("unknown", None),
        ("no", False),
        ("yes", True),
    ]
    assert all(r.signed is None or isinstance(r.signed, bool) for r in recent)


REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from imgctl.store import AuditRecord, AuditStore

    async def main(url, name):
        store = await AuditStore.open(url)
        try:
            await store.record(AuditRecord(
                request_id=name, time=datetime.now(UTC), action="auth_check", result="succeeded"
            ))
        finally:
            await store.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_replica_processes_starting_together_migrate_once(db_url: str) -> None:
    # Separate processes: only the database's own lock (advisory lock, BEGIN IMMEDIATE) can
    # keep them from creating the table twice.
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            REPLICA,
            db_url,
            f"replica-{i}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(6)
    ]
    outputs = await asyncio.gather(*(process.communicate() for process in processes))
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    async with await AuditStore.open(db_url) as store:
        assert await store.count() == 6
        assert await store.count(request_id="replica-5") == 1
    _, _, versions = inspect_db(db_url)
    assert versions == [migration_head()]


# --- records ------------------------------------------------------------------------------


async def test_round_trip_of_every_field(db_url: str) -> None:
    full = full_record("req-full", T0)
    minimal = minimal_record("req-minimal", T0 + timedelta(seconds=1))
    async with await AuditStore.open(db_url) as store:
        await store.record(full)
        await store.record(minimal)
        recent = await store.recent()
    assert recent == [minimal, full]
    assert recent[1].error == full.error
    # Every text field is bounded: the 200,000-character error is kept cut, saying so.
    assert len(recent[1].error or "") == MAX_ERROR
    assert (recent[1].error or "").endswith("…[cut: 200021 characters]")
    assert recent[1].groups == ("engineering@example.com", "plateforme-équipe", "運用")
    assert recent[0].groups == ()
    assert recent[1].bytes_copied == 123_456_789_012
    assert recent[1].time == T0
    assert recent[1].time.tzinfo is UTC


async def test_time_is_stored_as_the_same_instant_in_utc(db_url: str) -> None:
    local = datetime(2024, 5, 17, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with await AuditStore.open(db_url) as store:
        await store.record(minimal_record("tz", local))
        (back,) = await store.recent()
    assert back.time == T0
    assert back.time.utcoffset() == timedelta(0)


async def test_recent_is_newest_first_and_limited(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        # Inserted out of time order, and two sharing a time: ties go to the later insert.
        for i in [3, 0, 4, 1]:
            await store.record(minimal_record(f"r{i}", T0 + timedelta(minutes=i)))
        await store.record(minimal_record("r4-bis", T0 + timedelta(minutes=4)))
        assert [r.request_id for r in await store.recent(3)] == ["r4-bis", "r4", "r3"]
        assert [r.request_id for r in await store.recent()] == ["r4-bis", "r4", "r3", "r1", "r0"]
        assert await store.recent(0) == []
        with pytest.raises(ValueError, match="limit"):
            await store.recent(-1)
        with pytest.raises(ValueError, match="limit"):
            await store.recent(MAX_RECENT + 1)


async def test_count_filters(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        await store.record(full_record("a"))
        await store.record(minimal_record("b", result="denied"))
        await store.record(minimal_record("c", result="denied"))
        await store.record(minimal_record("c", result="succeeded"))
        assert await store.count() == 4
        assert await store.count(result="denied") == 2
        assert await store.count(request_id="c") == 2
        assert await store.count(request_id="c", result="succeeded") == 1
        assert await store.count(subject="CgZ6b8OrEgNzc2g", destination_env="prod") == 1
        assert await store.count(email="zoë.ünïcödé@例え.jp") == 1
        assert await store.count(result="invalid") == 0
        with pytest.raises(ValueError, match="groups"):
            await store.count(groups="x")
        with pytest.raises(ValueError, match="nonsense"):
            await store.count(nonsense="x")


async def test_fifty_concurrent_records_all_commit(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        records = [
            full_record(f"req-{i:02d}", T0 + timedelta(milliseconds=i))
            if i % 2
            else minimal_record(f"req-{i:02d}", T0 + timedelta(milliseconds=i))
            for i in range(50)
        ]
        results = await asyncio.gather(
            *(store.record(record) for record in records), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        assert await store.count() == 50
        assert await store.count(action="promote") == 25
        recent = await store.recent(100)
    assert {r.request_id for r in recent} == {f"req-{i:02d}" for i in range(50)}
    assert recent == sorted(records, key=lambda r: r.time, reverse=True)


async def test_values_that_would_break_an_insert_are_stored_anyway(db_url: str) -> None:
    long_id = "id-" + "é" * 10_000
    hostile = AuditRecord(
        request_id=long_id,
        time=T0,
        action="promote",
        result="invalid",
        subject="s" * 5_000,
        groups=("nul\x00group", "lone\ud800surrogate"),
        reference="app:v1\x00evil",
        error="bad \udcff bytes",
    )
    async with await AuditStore.open(db_url) as store:
        await store.record(hostile)
        (back,) = await store.recent()
        assert await store.count(request_id=back.request_id) == 1
    # Cut by AuditRecord to their bounds, below what the store's indexes could take.
    assert len(back.request_id) == MAX_REQUEST_ID < MAX_INDEXED_CHARS
    assert back.request_id.endswith("…[cut: 10003 characters]")
    assert back.request_id.startswith("id-éé")
    assert back.subject is not None
    assert len(back.subject) == MAX_SUBJECT < MAX_INDEXED_CHARS
    assert back.reference is not None
    assert "\x00" not in back.reference
    assert back.reference.startswith("app:v1")
    assert back.reference.endswith("evil")
    assert back.groups[0].startswith("nul")
    assert "\x00" not in back.groups[0]
    assert back.groups[1].startswith("lone")
    assert back.groups[1].endswith("surrogate")
    assert back.error is not None
    assert back.error.startswith("bad ")
    back.groups[1].encode()  # valid UTF-8 now


async def test_unknown_words_are_refused_before_writing(db_url: str) -> None:
    async with await AuditStore.open(db_url) as store:
        with pytest.raises(ValueError, match="result"):
            await store.record(minimal_record("x", result="maybe"))
        with pytest.raises(ValueError, match="kind"):
            await store.record(
                AuditRecord(request_id="y", time=T0, action="promote", result="failed", kind="vm")
            )
        assert await store.count() == 0


async def test_closed_store_refuses_work(db_url: str) -> None:
    store = await AuditStore.open(db_url)
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.record(minimal_record("late"))


async def test_aclose_waits_for_records_already_handed_over(db_url: str) -> None:
    store = await AuditStore.open(db_url)
    pending = [asyncio.ensure_future(store.record(minimal_record(f"p{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await store.aclose()
    await asyncio.gather(*pending)
    async with await AuditStore.open(db_url) as reopened:
        assert await reopened.count() == 20


# --- errors -------------------------------------------------------------------------------

BAD_LOCATIONS = [
    # The database's directory would have to be created inside a regular file.
    pytest.param("sqlite", "sqlite:///{tmp}/a-file/imgctl.db", id="sqlite-dir-is-a-file"),
    # Nothing listens on port 1.
    pytest.param(
        "postgresql", "postgresql://alice:s3cr3t-Pa55@127.0.0.1:1/test", id="postgresql-refused"
    ),
    # The server is there; the database is not.
    pytest.param(
        "postgresql",
        "postgres://postgres:s3cr3t-Pa55@127.0.0.1:5432/imgctl_no_such_database",
        id="postgresql-no-database",
    ),
]


@pytest.mark.parametrize(("kind", "url"), BAD_LOCATIONS)
async def test_unreachable_database_is_a_clear_store_error(
    kind: str, url: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    url = url.format(tmp=tmp_path)
    with pytest.raises(StoreError) as caught:
        await asyncio.wait_for(AuditStore.open(url), timeout=30)
    message = str(caught.value)
    assert isinstance(caught.value, ImgctlError)
    assert "s3cr3t" not in message
    assert "Pa55" not in message
    assert "\n" not in message
    if kind == "postgresql":
        assert "127.0.0.1" in message
        assert "***" in message
        assert DATABASE_URL_ENV in message
    else:
        assert "a-file" in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:s3cr3t-Pa55@db/imgctl",
        "postgresql+asyncpg://u:s3cr3t-Pa55@db/imgctl",
        "not a url at all s3cr3t-Pa55",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
async def test_unsupported_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        await AuditStore.open(url)
    assert DATABASE_URL_ENV in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


# --- database_url and redaction -----------------------------------------------------------


def test_default_is_a_sqlite_file_in_the_state_dir(tmp_path: Path) -> None:
    expected = f"sqlite:///{tmp_path}/imgctl.db"
    assert database_url({}, tmp_path) == expected
    assert database_url({DATABASE_URL_ENV: "  "}, tmp_path) == expected


def test_relative_state_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_url({}, Path("state")) == f"sqlite:///{tmp_path}/state/imgctl.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:pw@db:5432/imgctl", "postgresql+psycopg://u:pw@db:5432/imgctl"),
        ("postgresql://u:pw@db/imgctl", "postgresql+psycopg://u:pw@db/imgctl"),
        ("postgresql+psycopg://u@db/imgctl", "postgresql+psycopg://u@db/imgctl"),
        (
            "postgresql://u:p%40ss%2Fw@db/imgctl?sslmode=require&options=-csearch_path%3Dx",
            "postgresql+psycopg://u:p%40ss%2Fw@db/imgctl?options=-csearch_path%3Dx&sslmode=require",
        ),
        ("sqlite:////var/lib/imgctl/imgctl.db", "sqlite:////var/lib/imgctl/imgctl.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        (" postgres://u@db/imgctl\n", "postgresql+psycopg://u@db/imgctl"),
    ],
)
def test_configured_urls_are_normalised(given: str, expected: str, tmp_path: Path) -> None:
    assert database_url({DATABASE_URL_ENV: given}, tmp_path) == expected


@pytest.mark.parametrize(
    "given",
    [
        "mysql://u:s3cr3t@db/imgctl",
        "postgresql+psycopg2://u:s3cr3t@db/imgctl",
        "redis://:s3cr3t@cache:6379/0",
        "host=db user=u password=s3cr3t",
        "sqlite:///:memory:",
    ],
)
def test_unsupported_urls_name_the_variable_and_hide_the_password(
    given: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError) as caught:
        database_url({DATABASE_URL_ENV: given}, tmp_path)
    assert DATABASE_URL_ENV in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.hint
    assert "postgresql://" in caught.value.hint


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:pw@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("postgresql://db/x", "postgresql://db/x"),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),
        (
            "postgresql://u:pw@db/x?password=pw2&sslmode=require",
            "postgresql://u:***@db/x?password=***&sslmode=require",
        ),
        (
            "postgresql://db/x?sslmode=require&PASSWORD=pw2",
            "postgresql://db/x?sslmode=require&PASSWORD=***",
        ),
        ("host=db password=pw2 user=u", "host=db password=*** user=u"),
        ("sqlite:////var/lib/imgctl.db", "sqlite:////var/lib/imgctl.db"),
    ],
)
def test_redact_url(given: str, expected: str) -> None:
    assert redact_url(given) == expected


# --- the record itself ----------------------------------------------------------------------


def test_record_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditRecord(request_id="r", time=datetime(2024, 1, 1), action="promote", result="failed")


def test_record_as_dict_is_json_ready() -> None:
    record = full_record()
    data = record.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["time"] == "2024-05-17T09:30:15.123456Z"
    assert data["groups"] == ["engineering@example.com", "plateforme-équipe", "運用"]
    assert set(data) == set(AuditRecord.__dataclass_fields__)
    assert datetime.fromisoformat(str(data["time"])) == record.time


def test_record_keeps_groups_as_a_tuple() -> None:
    record = AuditRecord(
        request_id="r",
        time=T0,
        action="auth_check",
        result="denied",
        groups=["a", "b"],  # type: ignore[arg-type]
    )
    assert record.groups == ("a", "b")
    with pytest.raises(TypeError):
        AuditRecord(request_id="r", time=T0, action="auth_check", result="denied", groups="ab")  # type: ignore[arg-type]
