"""Bulk catalog import: ``CatalogStore.import_images`` and ``imgctl catalog import`` (issue 21).

On SQLite and PostgreSQL (the ``db_url`` fixture): what an import writes, that a second import
writes nothing, that it is one transaction, that its statements do not grow with the number of
images, and the command's formats (our own ``catalog ls -o json`` export through a real
``imgctl catalog serve``, JSON lines, cip snapshots), bad lines and summary.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from imgctl.catalog.imports import (
    MAX_LINE_BYTES,
    MAX_REPORTED,
    ImportFileError,
    read_import_file,
)
from imgctl.errors import StoreError
from imgctl.promotion.manifests import snapshot_csv, snapshot_yaml
from imgctl.store import CatalogImage, CatalogStore, ImportImage

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.postgres import PG_DSN, scratch_database

REGISTRY = "registry.example.com"


def digest(n: int) -> str:
    """A well-formed digest for image ``n``."""
    return f"sha256:{n:064x}"


def images(count: int, environment: str = "prod", start: int = 0) -> list[ImportImage]:
    """``count`` entries, one repository each, tagged v<n % 7>.0."""
    return [
        ImportImage(environment, f"{REGISTRY}/team-{n % 10}/app-{n}", digest(n), (f"v{n % 7}.0",))
        for n in range(start, start + count)
    ]


def _comparable(image: CatalogImage) -> dict[str, Any]:
    body = image.as_json()
    body.pop("updated_at")  # every write sets it
    return body


async def _everything(store: CatalogStore) -> list[dict[str, Any]]:
    return sorted(
        (_comparable(image) for image in await store.list()),
        key=lambda body: (body.get("environment", ""), body["name"], body["id"]),
    )


# --- the store --------------------------------------------------------------------------------


async def test_import_creates_entries_and_a_second_import_writes_nothing(
    store: CatalogStore,
) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = [
        *images(50),
        ImportImage(
            "dev",
            f"{REGISTRY}/team/full",
            digest(999),
            ("1.0", "latest"),
            source=f"{REGISTRY}/ci/full:1.0@{digest(999)}",
            promoted_by="alice@example.com",
            promoted_at=when,
            signed=True,
            attested=False,
            created_at=when,
        ),
    ]
    result = await store.import_images(first)
    assert (result.images, result.new, result.present) == (51, 51, 0)
    assert (result.tagged, result.untagged) == (0, 0)
    assert result.environments == ("dev", "prod")
    full = await store.get(digest(999), "dev", name=f"{REGISTRY}/team/full")
    assert full is not None
    assert full.tags == ("1.0", "latest")
    assert full.source == f"{REGISTRY}/ci/full:1.0@{digest(999)}"
    assert (full.promoted_by, full.promoted_at, full.created_at) == (
        "alice@example.com",
        when,
        when,
    )
    assert (full.signed, full.attested) == (True, False)
    assert await store.promoted("prod", f"{REGISTRY}/team-3/app-3", digest(3))
    assert await store.promoted("prod", f"{REGISTRY}/team-3/app-3", tag="v3.0")

    before = await store.version()
    contents = await _everything(store)
    again = await store.import_images(first)
    assert (again.images, again.new, again.present, again.tagged, again.untagged) == (
        51,
        0,
        51,
        0,
        0,
    )
    assert await store.version() == before  # no row written: updated_at unchanged
    assert await _everything(store) == contents


def _feed(url: str) -> tuple[int, set[int]]:
    """The catalog feed's revision, and the revisions the entries carry."""
    from sqlalchemy import create_engine, text

    from imgctl.store._url import parse_url

    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT revision FROM catalog_feed")).scalar_one()
            stamps = connection.execute(text("SELECT DISTINCT revision FROM catalog_images"))
            return int(revision), {int(stamp) for (stamp,) in stamps}
    finally:
        engine.dispose()


async def test_an_import_is_one_revision_of_the_feed(store: CatalogStore, db_url: str) -> None:
    await store.import_images(images(20))
    revision, stamps = _feed(db_url)
    assert stamps == {revision}  # admission's mirrors read the entries after what they saw
    await store.import_images(images(20))
    assert _feed(db_url) == (revision, {revision})  # nothing to write: the feed stays
    await store.import_images(images(20, start=10))
    later, stamps = _feed(db_url)
    assert later == revision + 1
    assert stamps == {revision, later}


async def test_present_entries_keep_theirs_and_gain_tags(store: CatalogStore) -> None:
    name = f"{REGISTRY}/team/app"
    await store.record_promotion(
        digest=digest(1),
        name=name,
        tags=["v1"],
        environment="prod",
        promoted_by="olga@example.com",
        source=f"{REGISTRY}/dev/app:v1@{digest(1)}",
        signed=True,
    )
    result = await store.import_images(
        [ImportImage("prod", name, digest(1), ("v2", "v1"), promoted_by="someone@else")]
    )
    assert (result.new, result.present, result.tagged, result.untagged) == (0, 1, 1, 0)
    image = await store.get(digest(1), "prod", name=name)
    assert image is not None
    assert image.tags == ("v1", "v2")  # its own first, then the new one
    assert (image.promoted_by, image.signed) == ("olga@example.com", True)


async def test_a_tag_given_to_another_digest_leaves_the_old_entry(store: CatalogStore) -> None:
    name = f"{REGISTRY}/team/app"
    await store.import_images([ImportImage("prod", name, digest(1), ("v1", "stable"))])
    other = f"{REGISTRY}/team/other"
    await store.import_images([ImportImage("prod", other, digest(1), ("v1",))])
    result = await store.import_images([ImportImage("prod", name, digest(2), ("v1",))])
    assert (result.new, result.present, result.tagged, result.untagged) == (1, 0, 0, 1)
    old = await store.get(digest(1), "prod", name=name)
    assert old is not None
    assert old.tags == ("stable",)
    moved = await store.get(digest(2), "prod", name=name)
    assert moved is not None
    assert moved.tags == ("v1",)
    # Another repository's tag of the same name is its own.
    kept = await store.get(digest(1), "prod", name=other)
    assert kept is not None
    assert kept.tags == ("v1",)
    assert await store.promoted("prod", name, digest(1))  # its digest stays recorded


async def test_dry_run_counts_and_writes_nothing(store: CatalogStore) -> None:
    await store.import_images(images(10))
    before = await store.version()
    result = await store.import_images(images(30), dry_run=True)
    assert (result.images, result.new, result.present, result.dry_run) == (30, 20, 10, True)
    assert await store.version() == before


async def test_refuses_a_key_twice_and_a_tag_on_two_digests(store: CatalogStore) -> None:
    name = f"{REGISTRY}/team/app"
    with pytest.raises(ValueError, match="imported twice"):
        await store.import_images(images(3) + images(1))
    with pytest.raises(ValueError, match="given to both"):
        await store.import_images(
            [
                ImportImage("prod", name, digest(1), ("v1",)),
                ImportImage("prod", name, digest(2), ("v1",)),
            ]
        )
    assert (await store.version())[0] == 0


def _refuse_one_insert(url: str, refused: str) -> None:
    """A trigger in the database that makes the insert of entry ``refused`` fail."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON catalog_images "
                f"WHEN NEW.id = '{refused}' BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
            )
        return
    schema = url.rpartition("search_path%3D")[2]
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(f"SET search_path = {schema}")
        connection.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by test'; END $$"
        )
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON catalog_images FOR EACH ROW "
            f"WHEN (NEW.id = '{refused}') EXECUTE FUNCTION refuse()"
        )


async def test_one_failing_row_writes_nothing(store: CatalogStore, db_url: str) -> None:
    name = f"{REGISTRY}/team/app"
    await store.import_images([ImportImage("prod", name, digest(1), ("v1",))])
    before = await store.version()
    contents = await _everything(store)
    _refuse_one_insert(db_url, digest(1999))
    batch = [
        ImportImage("prod", name, digest(1), ("v2",)),  # an update of a present entry
        ImportImage("prod", name, digest(2), ("v1",)),  # a tag move
        *images(1000, start=1000),  # the last one is refused by the trigger
    ]
    with pytest.raises(StoreError, match="refused by test"):
        await store.import_images(batch)
    assert await store.version() == before
    assert await _everything(store) == contents


async def test_statements_do_not_grow_with_the_images(store: CatalogStore) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        await store.import_images(images(12_000))
        first = len(statements)
        statements.clear()
        await store.import_images(images(12_000, start=6_000))  # half present
        second = len(statements)
    finally:
        event.remove(store._engine, "before_cursor_execute", count)
    # BEGIN, the read (SQLite: one per 5,000 repositories), the feed's bump, on PostgreSQL
    # LOCK and the read again, one bulk insert (COPY / executemany), one batched update, COMMIT.
    assert first <= 10, statements
    assert second <= 10, statements
    assert (await store.version())[0] == 18_000


# --- the file ---------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _entry(n: int, **fields: Any) -> str:
    body = {"id": digest(n), "name": f"{REGISTRY}/team/app-{n}", "tags": [f"v{n}"], **fields}
    return json.dumps(body)


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    lines = [
        _entry(1),
        f'{{"id": "{digest(2)}", "id": "{digest(2)}", "name": "{REGISTRY}/a", "tags": []}}',
        _entry(3, tags="v3"),
        "",
        json.dumps(
            {"id": "registry.example.com/a@" + digest(4), "name": f"{REGISTRY}/a", "tags": []}
        ),
        json.dumps({"id": digest(5), "name": "Registry.example.com/A", "tags": []}),
        json.dumps({"id": digest(6), "name": "docker.io/nginx", "tags": []}),
        _entry(7, tags=[".hidden"]),
        _entry(8, environment="dev"),
        _entry(9, signed="yes"),
        _entry(10, promoted_at="yesterday"),
        _entry(11, colour="blue"),
        "not json",
        '{"id": NaN}',
        _entry(1),  # the first line again
        json.dumps({"id": digest(16), "name": f"{REGISTRY}/team/app-1", "tags": ["v1"]}),
        _entry(17, source="a\u0000b"),
        "[]",
    ]
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ImportFileError) as caught:
        read_import_file(path, environment="prod")
    error = caught.value
    found = {bad.line: bad.message for bad in error.bad}
    assert error.count == 16
    assert sorted(found) == [2, 3, *range(5, 19)], found
    assert "'id' appears twice" in found[2]
    assert "'tags' must be a list" in found[3]
    assert "digest" in found[5]
    assert "lowercase" in found[6] or "canonical" in found[6]
    assert "use 'docker.io/library/nginx'" in found[7]
    assert "invalid tag '.hidden'" in found[8]
    assert "-e/--environment says 'prod'" in found[9]
    assert "'signed' must be true or false" in found[10]
    assert "RFC 3339" in found[11]
    assert "unknown key 'colour'" in found[12]
    assert "not JSON" in found[13]
    assert "NaN" in found[14]
    assert "also on line 1" in found[15]
    assert "on line 1: a tag names one digest" in found[16]
    assert "U+0000" in found[17]
    assert "catalog object" in found[18]
    assert 1 not in found


def test_many_bad_lines_are_counted_past_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", ["{}"] * (MAX_REPORTED + 15))
    with pytest.raises(ImportFileError) as caught:
        read_import_file(path, environment="prod")
    error = caught.value
    assert error.count == MAX_REPORTED + 15
    assert [bad.line for bad in error.bad] == list(range(1, MAX_REPORTED + 1))


def test_a_line_too_long_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path / "long.jsonl", [_entry(1), _entry(2, source="x" * MAX_LINE_BYTES)])
    with pytest.raises(ImportFileError) as caught:
        read_import_file(path, environment="prod")
    error = caught.value
    assert [(bad.line, "longer than" in bad.message) for bad in error.bad] == [(2, True)]


def test_a_json_list_reports_the_line_an_element_starts_on(tmp_path: Path) -> None:
    good = {"id": digest(1), "name": f"{REGISTRY}/a", "tags": ["v1"], "environment": "prod"}
    bad = {"id": "nope", "name": f"{REGISTRY}/b", "tags": [], "environment": "prod"}
    path = tmp_path / "list.json"
    path.write_text(json.dumps([good, good | {"id": digest(2), "tags": []}, bad], indent=2))
    with pytest.raises(ImportFileError) as caught:
        read_import_file(path)
    error = caught.value
    # The third element's "{" is the line before its "id".
    lines = path.read_text().splitlines()
    assert [bad.line for bad in error.bad] == [lines.index('    "id": "nope",')]


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The command's environment: the test's database, nothing else of the caller's."""
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "IMGCTL_DATABASE_URL": db_url,
        "IMGCTL_STATE_DIR": str(tmp_path / "state"),
    }


def imgctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "catalog", "import", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _catalog_ls(env: dict[str, str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "catalog", "ls", "--catalog-url", url, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
async def reader(db_url: str) -> AsyncIterator[CatalogStore]:
    """The same database, to look at what the command wrote."""
    store = await CatalogStore.open(db_url)
    try:
        yield store
    finally:
        await store.aclose()


async def test_command_imports_atomically_and_idempotently(
    env: dict[str, str], reader: CatalogStore, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "images.jsonl",
        [_entry(n, environment="prod") for n in range(40)] + [_entry(40)],
    )
    refused = imgctl(env, str(path))
    assert refused.returncode == 2, refused
    assert f"{path}:41: no 'environment': give -e/--environment ENV" in refused.stderr
    assert "1 bad line; nothing was imported" in refused.stderr
    assert (await reader.version())[0] == 0
    many = _write(tmp_path / "many.jsonl", ["{}"] * (MAX_REPORTED + 5))
    refused = imgctl(env, str(many), "-e", "prod")
    assert refused.returncode == 2
    assert f"{many}:{MAX_REPORTED}: no 'id'" in refused.stderr
    assert f"{many}:{MAX_REPORTED + 1}:" not in refused.stderr
    assert "... and 5 more bad lines" in refused.stderr
    assert f"{MAX_REPORTED + 5} bad lines (the first {MAX_REPORTED} listed)" in refused.stderr

    dry = imgctl(env, str(path), "-e", "prod", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == (
        "would import 41 images (41 new, 0 already present) into prod (dry run: nothing written)\n"
    )
    assert (await reader.version())[0] == 0

    done = imgctl(env, str(path), "-e", "prod")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 41 images (41 new, 0 already present) into prod\n"
    assert (await reader.version())[0] == 41
    before = await reader.version()

    again = imgctl(env, str(path), "-e", "prod", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "file": str(path),
        "format": "jsonl",
        "images": 41,
        "new": 0,
        "present": 41,
        "tagged": 0,
        "untagged": 0,
        "environments": ["prod"],
        "dryRun": False,
    }
    assert await reader.version() == before


async def test_our_own_export_round_trips(
    env: dict[str, str], reader: CatalogStore, db_url: str, tmp_path: Path
) -> None:
    # The original catalog, written the ways entries get there, served by imgctl catalog serve.
    with scratch_database("sqlite", tmp_path / "original") as original_url:
        original = await CatalogStore.open(original_url)
        try:
            for n in range(5):
                await original.record_promotion(
                    digest=digest(n),
                    name=f"{REGISTRY}/team/app",
                    tags=[f"v{n}", "latest"],
                    environment="prod",
                    promoted_by="olga@example.com",
                    source=f"{REGISTRY}/staging/app:v{n}@{digest(n)}",
                    signed=n % 2 == 0,
                    attested=n % 3 == 0,
                )
            await original.put(digest(9), "docker.io/library/nginx", ["1.27"], environment="prod")
            await original.record_promotion(
                digest=digest(7),
                name=f"{REGISTRY}/team/other",
                tags=["v7"],
                environment="dev",
                promoted_by=None,
                source=None,
            )
            expected = await _everything(original)
        finally:
            await original.aclose()
        directory = tmp_path / "server"
        directory.mkdir()
        with catalog_server(IMGCTL, directory, database_url=original_url) as url:
            listed = _catalog_ls(env, url)
    assert listed.returncode == 0, listed.stderr
    export = tmp_path / "export.json"
    export.write_text(listed.stdout)

    done = imgctl(env, str(export))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 7 images (7 new, 0 already present) into dev, prod\n"
    assert await _everything(reader) == expected
    assert imgctl(env, str(export)).stdout.startswith("imported 7 images (0 new, 7 already")


@pytest.mark.parametrize("form", ["yaml", "json", "csv"])
async def test_snapshots_import_under_their_registry(
    form: str, env: dict[str, str], reader: CatalogStore, tmp_path: Path
) -> None:
    inventory = {
        "team/app": {digest(1): ["1.0", "latest"], digest(2): []},
        "tools": {digest(3): ["v3"]},
    }
    path = tmp_path / f"snapshot.{form}"
    if form == "yaml":
        path.write_text(snapshot_yaml(inventory))
    elif form == "csv":
        path.write_text(snapshot_csv(inventory))
    else:
        entries = [{"name": name, "dmap": dmap} for name, dmap in inventory.items()]
        path.write_text(json.dumps(entries))

    no_environment = imgctl(env, str(path), "--registry", f"{REGISTRY}/prod")
    assert no_environment.returncode == 2
    assert "a snapshot names no environment" in no_environment.stderr
    no_registry = imgctl(env, str(path), "-e", "prod")
    assert no_registry.returncode == 2
    assert "--registry REGISTRY[/PATH]" in no_registry.stderr

    done = imgctl(env, str(path), "-e", "prod", "--registry", f"{REGISTRY}/prod/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 3 images (3 new, 0 already present) into prod\n"
    found = {(image.name, image.id): image.tags for image in await reader.list()}
    assert found == {
        (f"{REGISTRY}/prod/team/app", digest(1)): ("1.0", "latest"),
        (f"{REGISTRY}/prod/team/app", digest(2)): (),
        (f"{REGISTRY}/prod/tools", digest(3)): ("v3",),
    }


async def test_snapshot_bad_entries_name_their_lines(
    env: dict[str, str], reader: CatalogStore, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.yaml"
    path.write_text(
        "- name: team/app\n"
        "  dmap:\n"
        f'    "{digest(1)}": ["1.0"]\n'
        '    "sha256:abc": ["1.0"]\n'
        "- name: Team/Bad\n"
        "  dmap:\n"
        f'    "{digest(2)}": ["-x"]\n'
    )
    refused = imgctl(env, str(path), "-e", "prod", "--registry", REGISTRY)
    assert refused.returncode == 2
    assert f"{path}:4: image 'team/app': invalid digest 'sha256:abc'" in refused.stderr
    assert f"{path}:7: name: " in refused.stderr
    assert (await reader.version())[0] == 0
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text(
        f'- name: team/app\n  dmap:\n    "{digest(1)}": ["1.0"]\n    "{digest(1)}": ["2.0"]\n'
    )
    refused = imgctl(env, str(duplicate), "-e", "prod", "--registry", REGISTRY)
    assert refused.returncode == 2
    assert f"{duplicate}:4: " in refused.stderr


@pytest.mark.parametrize(
    "name",
    [
        "registry.example.com/team/app",
        "registry.example.com:5000/a/b/c",
        "localhost:5000/app",
        "localhost/app",
        "127.0.0.1:5000/app",
        "[::1]:5000/app",
        "docker.io/library/nginx",
        "docker.io/nginx",
        "index.docker.io/library/nginx",
        "Registry.example.com/app",
        "registry.example.com/App",
        "registry.example.com/a__b/c--d/e.f_g",
        "registry.example.com/a___b",
        "registry.example.com/-a",
        "registry.example.com/a/",
        "registry.example.com//a",
        "registry.example.com/a:tag",
        "registry.example.com/a@" + "sha256:" + "0" * 64,
        "registry.example.com/" + "a" * 255,
        "registry.example.com/" + "a" * 256,
        "team/app",
        "app",
    ],
)
def test_fast_name_check_agrees_with_the_reference_parser(name: str) -> None:
    from imgctl.catalog import imports
    from imgctl.errors import InvalidReferenceError
    from imgctl.oci.reference import Reference

    try:
        expected = Reference.parse_repository(name).name == name
    except InvalidReferenceError:
        expected = False
    try:
        imports._repository(name)
        accepted = True
    except imports._Bad:
        accepted = False
    assert accepted == expected


def test_an_empty_file_is_no_entries(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    read = read_import_file(path, environment="prod")
    assert (read.format, read.images) == ("jsonl", [])
