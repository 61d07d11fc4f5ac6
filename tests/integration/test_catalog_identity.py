"""Catalog identity: one entry per (digest, repository, environment), and admission decides by
repository + digest (+ tag), on SQLite and PostgreSQL, through the store, the HTTP API and
webhook of `imgctl catalog serve`, and the migration from a 0003 database.

The defect these tests pin down (issue 15, item 1): the catalog's key was (id, environment), so
promoting one digest under a second repository name overwrote the first repository's entry.
Afterwards the webhook refused the first repository's image and admitted a tag of the second
repository that was never promoted there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import alembic.command
import grpc
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from imgctl.catalog.client import record_images
from imgctl.store import CatalogImage, CatalogStore
from imgctl.store._schema import CATALOG_IMAGES, METADATA
from imgctl.store._store import MIGRATIONS_DIR

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.deployment import (
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    promote_request,
    server_env,
    start_identity,
    start_server,
    stop_process,
)
from ..support.layout import BuiltImage
from ..support.postgres import migration_head
from ..support.registry import Registry
from ..support.skopeo import push_layout

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
APP = "registry.prod.example/team/app"
FORK = "registry.prod.example/other/fork"


async def promote(
    store: CatalogStore, digest: str, name: str, tags: list[str], environment: str = "prod"
) -> CatalogImage:
    """Record a promotion the way `imgctl server` does after a copy."""
    return await store.record_promotion(
        digest=digest,
        name=name,
        tags=tags,
        environment=environment,
        promoted_by="alice@example.com",
        source=None,
    )


async def entries(
    store: CatalogStore, **filters: Any
) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(environment, name, id, tags) of every matching entry, sorted."""
    return sorted((i.environment, i.name, i.id, i.tags) for i in await store.list(**filters))


# --- the store ----------------------------------------------------------------------------


async def test_one_digest_two_repositories_one_environment(store: CatalogStore) -> None:
    await promote(store, D1, APP, ["v1"])
    await promote(store, D1, FORK, ["v2"])
    assert await entries(store) == [
        ("prod", FORK, D1, ("v2",)),
        ("prod", APP, D1, ("v1",)),
    ]
    # Each repository's digest is promoted...
    assert await store.promoted("prod", APP, D1) is True
    assert await store.promoted("prod", FORK, D1) is True
    # ... and each repository's own tags only: FORK:v1 was never promoted.
    assert await store.promoted("prod", APP, None, "v1") is True
    assert await store.promoted("prod", FORK, None, "v2") is True
    assert await store.promoted("prod", FORK, None, "v1") is False
    assert await store.promoted("prod", APP, None, "v2") is False
    # A repository that was never promoted is not admitted by the digest it shares.
    assert await store.promoted("prod", "registry.prod.example/third", D1) is False


async def test_one_repository_two_environments(store: CatalogStore) -> None:
    await promote(store, D1, APP, ["v1"], environment="stage")
    await promote(store, D1, APP, ["v1", "stable"], environment="prod")
    assert await entries(store) == [
        ("prod", APP, D1, ("v1", "stable")),
        ("stage", APP, D1, ("v1",)),
    ]
    assert await store.promoted("stage", APP, None, "stable") is False
    assert await store.promoted("prod", APP, None, "stable") is True
    assert await store.delete(D1, "stage") == 1
    assert await store.promoted("stage", APP, D1) is False
    assert await store.promoted("prod", APP, D1) is True


async def test_promoting_again_adds_tags_to_its_own_entry_only(store: CatalogStore) -> None:
    first = await promote(store, D1, APP, ["v1", "v1"])
    assert first.tags == ("v1",)
    await promote(store, D1, FORK, ["v1"])
    again = await promote(store, D1, APP, ["latest"])
    assert again.tags == ("v1", "latest")
    assert again.created_at == first.created_at
    assert await entries(store, name=FORK) == [("prod", FORK, D1, ("v1",))]


async def test_a_moved_tag_leaves_its_old_digest_in_that_repository_only(
    store: CatalogStore,
) -> None:
    await promote(store, D1, APP, ["v1", "stable"])
    await promote(store, D1, FORK, ["v1"])
    await promote(store, D2, APP, ["v1"])  # APP:v1 now names D2 in prod's registry
    assert await entries(store) == [
        ("prod", FORK, D1, ("v1",)),
        ("prod", APP, D1, ("stable",)),
        ("prod", APP, D2, ("v1",)),
    ]
    # Both digests were promoted: pulling either by digest is allowed.
    assert await store.promoted("prod", APP, D1) is True
    assert await store.promoted("prod", APP, D2) is True
    assert await store.promoted("prod", APP, None, "v1") is True
    assert [i.id for i in await store.list(name=APP, tag="v1")] == [D2]
    # Withdrawing D2 withdraws APP:v1 too; FORK:v1 (its own promotion of D1) stays.
    assert await store.delete(D2, "prod", name=APP) == 1
    assert await store.promoted("prod", APP, None, "v1") is False
    assert await store.promoted("prod", FORK, None, "v1") is True
    assert await store.promoted("prod", APP, D1) is True


async def test_deleting_one_repositorys_entry_leaves_the_other(store: CatalogStore) -> None:
    await promote(store, D1, APP, ["v1"])
    await promote(store, D1, FORK, ["v2"])
    await promote(store, D1, APP, ["v1"], environment="stage")
    assert await store.promoted("prod", APP, D1) is True  # remembered from here on
    assert await store.delete(D1, "prod", name=APP) == 1
    assert await store.promoted("prod", APP, D1) is False
    assert await store.promoted("prod", APP, None, "v1") is False
    assert await store.promoted("prod", FORK, D1) is True
    assert await store.promoted("prod", FORK, None, "v2") is True
    assert await store.promoted("stage", APP, D1) is True
    assert await store.delete(D1, name=FORK) == 1
    assert await entries(store) == [("stage", APP, D1, ("v1",))]
    assert await store.delete(D1) == 1
    assert await store.list() == []


async def test_remembered_answers_are_per_repository(store: CatalogStore) -> None:
    await promote(store, D1, APP, ["v1"])
    assert await store.promoted("prod", APP, D1) is True
    assert await store.promoted("prod", APP, None, "v1") is True
    assert store.known("prod", APP, D1) is True
    assert store.known("prod", APP, None, "v1") is True
    # Another repository with the same digest or tag is not answered from memory.
    assert store.known("prod", FORK, D1) is False
    assert store.known("prod", FORK, None, "v1") is False
    assert await store.promoted("prod", FORK, D1) is False
    assert await store.promoted("prod", FORK, None, "v1") is False


async def test_get_picks_an_entry_by_environment_and_repository(store: CatalogStore) -> None:
    await promote(store, D1, APP, ["v1"])
    await asyncio.sleep(0.01)
    await promote(store, D1, FORK, ["v2"])
    newest = await store.get(D1)
    assert newest is not None
    assert (newest.name, newest.tags) == (FORK, ("v2",))  # the most recently updated entry
    chosen = await store.get(D1, "prod", name=APP)
    assert chosen is not None
    assert (chosen.name, chosen.tags) == (APP, ("v1",))
    assert await store.get(D1, "stage", name=APP) is None
    assert await store.get(D1, name="registry.prod.example/none") is None


async def test_put_with_an_environment_is_keyed_by_repository(store: CatalogStore) -> None:
    first, created = await store.put(D1, APP, ["v1"], environment="prod")
    assert created
    second, created = await store.put(D1, FORK, ["v2"], environment="prod")
    assert created
    assert (second.name, second.tags) == (FORK, ("v2",))
    updated, created = await store.put(D1, APP, ["v3"], environment="prod")
    assert not created
    assert (updated.name, updated.tags, updated.created_at) == (APP, ("v3",), first.created_at)
    assert await entries(store) == [("prod", FORK, D1, ("v2",)), ("prod", APP, D1, ("v3",))]
    assert await store.promoted("prod", FORK, None, "v3") is False


async def test_put_without_an_environment_keeps_imagelist_semantics(store: CatalogStore) -> None:
    # imagelist: an existing id keeps its name; only its tags change.
    await store.put("img-1", APP, ["v1"])
    updated, created = await store.put("img-1", FORK, ["v2"])
    assert not created
    assert (updated.name, updated.tags) == (APP, ("v2",))
    # Even when the writers race, with different names: one entry for the id.
    results = await asyncio.gather(
        *(store.put("img-2", f"registry.example/app{i}", [f"t{i}"]) for i in range(10))
    )
    assert sum(created for _, created in results) == 1
    assert len(await store.list(environment="", digest=None, name=None)) == 2


async def test_concurrent_promotions_of_one_digest_to_many_repositories(
    store: CatalogStore,
) -> None:
    names = [f"registry.prod.example/team/app{i}" for i in range(20)]
    await asyncio.gather(*(promote(store, D1, name, [f"v{i}"]) for i, name in enumerate(names)))
    assert await entries(store) == sorted(
        ("prod", name, D1, (f"v{i}",)) for i, name in enumerate(names)
    )
    answers = await asyncio.gather(*(store.promoted("prod", name, D1) for name in names))
    assert answers == [True] * len(names)


async def test_concurrent_promotions_moving_one_tag_leave_it_on_one_digest(
    store: CatalogStore,
) -> None:
    digests = [f"sha256:{i:064x}" for i in range(1, 13)]
    await asyncio.gather(*(promote(store, digest, APP, ["v1", "stable"]) for digest in digests))
    listed = await store.list(name=APP)
    assert sorted(image.id for image in listed) == digests
    assert sum("v1" in image.tags for image in listed) == 1
    assert sum("stable" in image.tags for image in listed) == 1


# --- the HTTP API and webhook of `imgctl catalog serve` -----------------------------------


def review(*images: str) -> dict[str, Any]:
    """An AdmissionReview for a Pod running ``images``."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "9c1e3f7a",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {
                    "containers": [{"name": f"c{i}", "image": ref} for i, ref in enumerate(images)]
                },
            },
        },
    }


def admit(url: str, *images: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/admission/prod", json=review(*images))
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()["response"]
    return response


def denied(url: str, image: str) -> str:
    """The denial message for a Pod running ``image`` (fails if it is allowed)."""
    response = admit(url, image)
    assert response["allowed"] is False, image
    message: str = response["status"]["message"]
    assert repr(image) in message
    return message


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[str]:
    with catalog_server(IMGCTL, tmp_path, database_url=db_url) as url:
        yield url


WRITE = {"Authorization": "Bearer write-me"}


def test_http_one_digest_two_repositories(served: str) -> None:
    for name, tags in ((APP, ["v1"]), (FORK, ["v2"])):
        body = {"id": D1, "name": name, "tags": tags, "environment": "prod"}
        answer = httpx.put(f"{served}/images", json=body, headers=WRITE)
        assert answer.status_code in (200, 201), answer.text
    listed = httpx.get(f"{served}/images", params={"digest": D1}).json()
    assert sorted((i["name"], i["tags"]) for i in listed) == [(FORK, ["v2"]), (APP, ["v1"])]
    # GET /images/:id answers for the digest: the most recently updated entry, or the one the
    # query names.
    assert httpx.get(f"{served}/images/{D1}").json()["name"] == FORK
    chosen = httpx.get(f"{served}/images/{D1}", params={"environment": "prod", "name": APP})
    assert (chosen.json()["name"], chosen.json()["tags"]) == (APP, ["v1"])
    missing = httpx.get(f"{served}/images/{D1}", params={"name": "registry.prod.example/x"})
    assert missing.status_code == 404

    assert admit(served, f"{APP}@{D1}", f"{FORK}@{D1}", f"{APP}:v1", f"{FORK}:v2")["allowed"]
    assert "tag not resolvable" in denied(served, f"{FORK}:v1")
    assert "tag not resolvable" in denied(served, f"{APP}:v2")

    # Withdrawing one repository's entry leaves the other's.
    gone = httpx.delete(
        f"{served}/images/{D1}", params={"environment": "prod", "name": APP}, headers=WRITE
    )
    assert gone.status_code == 204
    assert "not promoted to prod" in denied(served, f"{APP}@{D1}")
    assert "tag not resolvable" in denied(served, f"{APP}:v1")
    assert admit(served, f"{FORK}@{D1}", f"{FORK}:v2")["allowed"] is True
    listed = httpx.get(f"{served}/images", params={"digest": D1}).json()
    assert [(i["name"], i["tags"]) for i in listed] == [(FORK, ["v2"])]
    # Without a name, DELETE removes the id everywhere, as before.
    assert httpx.delete(f"{served}/images/{D1}", headers=WRITE).status_code == 204
    assert httpx.get(f"{served}/images").json() == []
    assert "not promoted to prod" in denied(served, f"{FORK}@{D1}")


def test_http_put_updates_only_its_own_repositorys_tags(served: str) -> None:
    for name, tags in ((APP, ["v1"]), (FORK, ["v2"]), (APP, ["v3"])):
        body = {"id": D1, "name": name, "tags": tags, "environment": "prod"}
        assert httpx.put(f"{served}/images", json=body, headers=WRITE).status_code in (200, 201)
    listed = httpx.get(f"{served}/images", params={"environment": "prod"}).json()
    assert sorted((i["name"], i["tags"]) for i in listed) == [(FORK, ["v2"]), (APP, ["v3"])]
    assert admit(served, f"{APP}:v3", f"{FORK}:v2")["allowed"] is True
    denied(served, f"{APP}:v1")
    denied(served, f"{FORK}:v3")


def test_cip_recording_merges_tags_per_repository(served: str) -> None:
    # What `imgctl cip --catalog-url` does: read the entry, add the new tags, write it back.
    # FORK's entry is the digest's most recently updated one when APP's is read back.
    for name, tags in ((APP, ["v1"]), (FORK, ["v2"]), (APP, ["v3"])):
        assert record_images(served, "write-me", "prod", {(name, D1): tags}) == 1
    listed = httpx.get(f"{served}/images", params={"digest": D1}).json()
    assert sorted((i["name"], i["tags"]) for i in listed) == [
        (FORK, ["v2"]),
        (APP, ["v1", "v3"]),
    ]


# --- promotions through `imgctl server` ----------------------------------------------------


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    with contextlib.ExitStack() as cleanup:
        users = {"alice": ("alice@example.com", [ENGINEERING, OPS])}
        yield start_identity(tmp_path_factory.mktemp("identity"), users, cleanup)


def test_server_promotes_one_digest_under_two_repositories(
    db_url: str,
    identity: Identity,
    registry: Registry,
    registry2: Registry,
    layouts: Callable[..., BuiltImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """The defect as found: the same bytes promoted to prod as first:v1 and as second:v2."""
    dev, prod = registry, registry2
    built = layouts(tag="v1", layers=1)
    first, second = repo("twin"), repo("twin")
    push_layout(built.oci_ref, f"{dev.host}/{first}:v1")
    push_layout(built.oci_ref, f"{dev.host}/{second}:v2")
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": db_url}
    process, address, http, _ = start_server(tmp_path, env)
    try:
        token = identity.token("alice")
        for ref in (f"{first}:v1", f"{second}:v2"):
            status, details, _, _ = asyncio.run(
                grpc_call(address, "Promote", promote_request(ref), token=token)
            )
            assert status == grpc.StatusCode.OK, details
        url = f"http://{http}"
        one, two = f"{prod.host}/release/{first}", f"{prod.host}/release/{second}"
        assert admit(url, f"{one}@{built.digest}", f"{two}@{built.digest}")["allowed"] is True
        assert admit(url, f"{one}:v1", f"{two}:v2")["allowed"] is True
        assert "tag not resolvable" in denied(url, f"{two}:v1")  # never promoted
        assert "tag not resolvable" in denied(url, f"{one}:v2")
        listed = httpx.get(f"{url}/images", params={"digest": built.digest}).json()
        assert sorted((i["name"], i["tags"], i["environment"]) for i in listed) == sorted(
            [(one, ["v1"], "prod"), (two, ["v2"], "prod")]
        )
    finally:
        stop_process(process)


# --- migration from 0003 -------------------------------------------------------------------

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# Rows as a 0003 database holds them: one per (id, environment).
OLD_ROWS: list[dict[str, Any]] = [
    {
        "id": D1,
        "environment": "prod",
        "name": APP,
        "tags": json.dumps(["v1", "stable"]),
        "source": "registry.dev.example/team/app:v1",
        "promoted_by": "alice@example.com",
        "promoted_at": T0,
        "created_at": T0,
        "updated_at": T0 + timedelta(minutes=1),
    },
    {
        "id": D1,
        "environment": "stage",
        "name": APP,
        "tags": json.dumps(["v1"]),
        "source": None,
        "promoted_by": None,
        "promoted_at": None,
        "created_at": T0,
        "updated_at": T0,
    },
    {
        "id": "quay.io/foo/nginx@" + D2,
        "environment": "",
        "name": "quay.io/foo/nginx",
        "tags": json.dumps(["latest", "ünïcode"]),
        "source": None,
        "promoted_by": None,
        "promoted_at": None,
        "created_at": T0 - timedelta(days=300),
        "updated_at": T0 - timedelta(days=3),
    },
]
COLUMNS = ("id", "environment", "name", "tags", "source", "promoted_by")
COLUMNS += ("promoted_at", "created_at", "updated_at")


def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    """Run imgctl's migrations up (or down) to ``revision``, as the store does."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if down:
                alembic.command.downgrade(config, revision)
            else:
                alembic.command.upgrade(config, revision)
    finally:
        engine.dispose()


def rows_of(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(f"SELECT {', '.join(COLUMNS)} FROM catalog_images ORDER BY id, environment")
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def _instant(value: Any) -> Any:
    # SQLite gives timestamps back as naive UTC strings or datetimes; PostgreSQL as aware ones.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def normalised(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows with their timestamps (the last three columns) as aware datetimes."""
    return [(*row[:-3], *(_instant(value) for value in row[-3:])) for row in rows]


def fill_0003_database(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    migrate_to(url, "0003")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            # Through the table's types, so the values are stored as the store writes them.
            connection.execute(CATALOG_IMAGES.insert(), OLD_ROWS)
    finally:
        engine.dispose()


def primary_key_and_indexes(url: str) -> tuple[list[str], set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            key = list(inspector.get_pk_constraint("catalog_images")["constrained_columns"])
            indexes = {str(index["name"]) for index in inspector.get_indexes("catalog_images")}
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            # Only this table's: other tables' migrations are not this module's subject.
            assert [
                d for d in compare_metadata(context, METADATA) if "catalog_images" in str(d)
            ] == []
            return key, indexes
    finally:
        engine.dispose()


async def test_upgrade_from_0003_keeps_every_row(db_url: str) -> None:
    fill_0003_database(db_url)
    before = normalised(rows_of(db_url))
    assert len(before) == len(OLD_ROWS)

    async with await CatalogStore.open(db_url) as store:  # migrates to head
        assert normalised(rows_of(db_url)) == before
        key, indexes = primary_key_and_indexes(db_url)
        assert key == ["id", "environment", "name"]
        assert {"ix_catalog_images_name", "ix_catalog_images_updated_at"} <= indexes
        # The old rows answer as before...
        assert await store.promoted("prod", APP, D1) is True
        assert await store.promoted("prod", APP, None, "stable") is True
        assert await store.promoted("stage", APP, D1) is True
        old = await store.get("quay.io/foo/nginx@" + D2)
        assert old is not None
        assert old.tags == ("latest", "ünïcode")
        assert old.created_at == T0 - timedelta(days=300)
        # ... and the new identity holds for new ones.
        await promote(store, D1, FORK, ["v9"])
        assert await store.promoted("prod", APP, D1) is True
        assert await store.promoted("prod", FORK, D1) is True
        assert await store.promoted("prod", FORK, None, "stable") is False
        updated, created = await store.put("quay.io/foo/nginx@" + D2, "quay.io/x/y", ["v2"])
        assert (created, updated.name) == (False, "quay.io/foo/nginx")

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == migration_head()
    finally:
        engine.dispose()


async def test_downgrade_to_0003_keeps_the_newest_entry_per_id_and_environment(
    db_url: str,
) -> None:
    async with await CatalogStore.open(db_url) as store:
        await promote(store, D1, APP, ["v1"])
        await asyncio.sleep(0.01)
        await promote(store, D1, FORK, ["v2"])
        await promote(store, D3, APP, ["v3"], environment="stage")
    migrate_to(db_url, "0003", down=True)
    rows = rows_of(db_url)
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        (D1, "prod", FORK, '["v2"]'),
        (D3, "stage", APP, '["v3"]'),
    ]
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            key = inspect(connection).get_pk_constraint("catalog_images")["constrained_columns"]
        assert list(key) == ["id", "environment"]
    finally:
        engine.dispose()
    # And up again.
    async with await CatalogStore.open(db_url) as store:
        assert [i.name for i in await store.list(digest=D1)] == [FORK]
