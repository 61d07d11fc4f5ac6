"""RepositoryQuery (one repository's promotions) on a real SQLite file and PostgreSQL.

The story page's query (issue 20 item 2): a row belongs to a repository when the reference the
caller sent is that repository with a tag or digest, exactly: no prefix of another name, no
case folding, no LIKE wildcard, no SPA bundle; readable environments and cursors as for every
audit query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from imgctl.store import AuditRecord, AuditStore, RepositoryQuery

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def row(
    request_id: str,
    reference: str,
    *,
    kind: str | None = "image",
    result: str = "succeeded",
    action: str = "promote",
    source: str | None = "dev",
    destination: str | None = "prod",
    digest: str | None = DIGEST_A,
) -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        time=T0 + timedelta(minutes=int(request_id[1:])),
        action=action,
        result=result,
        email="alice@example.com",
        kind=kind,
        reference=reference,
        source_env=source,
        destination_env=destination,
        digest=digest if result == "succeeded" else None,
    )


ROWS = [
    row("r1", "shop/web:1.0.0"),
    row("r2", "shop/web@" + DIGEST_B, digest=DIGEST_B),
    row("r3", "shop/web:1.1.0@" + DIGEST_B, digest=DIGEST_B, source="int", destination="prod"),
    row("r4", "shop/web:1.2.0", result="denied", kind=None),  # refused before it was planned
    row("r5", "shop/web:9.9.9", result="failed", source="dev", destination="int"),
    # Not shop/web: longer names, other cases, a sub-repository, wildcard look-alikes, an SPA.
    row("r6", "shop/web-admin:1.0.0"),
    row("r7", "shop/webx@" + DIGEST_A),
    row("r8", "shop/web/sub:1.0.0"),
    row("r9", "Shop/web:1.0.0", result="invalid", kind=None),
    row("r10", "shop_web:1.0.0"),
    row("r11", "shopxweb:1.0.0"),
    row("r12", "spa:shop:1.0.0", kind="spa"),
    row("r13", "myshop/web:1.0.0"),
    row("r14", "shop/web:1.0.0", action="auth_check", kind=None),
]


@pytest.fixture
async def audit(db_url: str) -> AsyncIterator[AuditStore]:
    store = await AuditStore.open(db_url)
    try:
        for record in ROWS:
            await store.record(record)
        yield store
    finally:
        await store.aclose()


async def ids(store: AuditStore, query: RepositoryQuery, limit: int = 50) -> list[str]:
    page = await store.search(query, limit=limit)
    return [record.request_id for record in page.records]


async def test_exactly_the_repositorys_promotions_newest_first(audit: AuditStore) -> None:
    assert await ids(audit, RepositoryQuery(repository="shop/web")) == [
        "r5",
        "r4",
        "r3",
        "r2",
        "r1",
    ]
    assert await ids(audit, RepositoryQuery(repository="shop_web")) == ["r10"]
    assert await ids(audit, RepositoryQuery(repository="shop/web-admin")) == ["r6"]
    assert await ids(audit, RepositoryQuery(repository="shop/web/sub")) == ["r8"]
    assert await ids(audit, RepositoryQuery(repository="shop")) == []  # r12 is an SPA bundle
    assert await ids(audit, RepositoryQuery(repository="web")) == []


async def test_filters_and_readable_environments(audit: AuditStore) -> None:
    web = "shop/web"
    assert await ids(audit, RepositoryQuery(repository=web, result="succeeded")) == [
        "r3",
        "r2",
        "r1",
    ]
    # r3 comes from int: a reader of dev and prod does not see it; r5 goes to int.
    readable = frozenset({"dev", "prod"})
    assert await ids(audit, RepositoryQuery(repository=web, readable=readable)) == [
        "r4",
        "r2",
        "r1",
    ]
    assert await ids(audit, RepositoryQuery(repository=web, readable=frozenset())) == []


async def test_cursor_walks_every_row_once(audit: AuditStore) -> None:
    query = RepositoryQuery(repository="shop/web")
    seen: list[str] = []
    cursor = None
    while True:
        page = await audit.search(query, limit=2, cursor=cursor)
        seen += [record.request_id for record in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["r5", "r4", "r3", "r2", "r1"]


def test_bad_queries_are_refused() -> None:
    for repository in ("", "Shop/web", "shop/web:1.0.0", "registry.example.com:5000/shop", "a//b"):
        with pytest.raises(ValueError, match="not a repository path"):
            RepositoryQuery(repository=repository)


async def test_placements_read_the_catalog_with_or_without_configured_registries(
    db_url: str,
) -> None:
    """Where the story page says a digest is: the catalog's entries of the repository."""
    from imgctl.promotion.environments import Environments
    from imgctl.store import CatalogStore
    from imgctl.web import WebContext
    from imgctl.web._story import placements

    catalog = await CatalogStore.open(db_url)
    try:
        for environment, digest, tags in (
            ("dev", DIGEST_A, ["1.0.0"]),
            ("dev", DIGEST_B, ["1.1.0", "latest"]),
            ("prod", DIGEST_A, []),  # its tag moved on to B
            ("prod", DIGEST_B, ["1.1.0"]),
        ):
            await catalog.record_promotion(
                digest=digest,
                name="registry.example.com/shop/web",
                tags=tags,
                environment=environment,
                promoted_by="alice@example.com",
                source=None,
            )
        # Another repository's entries of the same digest are not shop/web's.
        await catalog.put(DIGEST_A, "registry.example.com/shop/web-admin", ["9"], environment="qa")
        configured = Environments.from_environment(
            {
                "IMGCTL_REGISTRY_DEV": "registry.example.com",
                "IMGCTL_REGISTRY_PROD": "registry.example.com",
                "IMGCTL_REGISTRY_QA": "registry.example.com",
            }
        )
        expected = {
            DIGEST_A: {"dev": ("1.0.0",), "prod": ()},
            DIGEST_B: {"dev": ("1.1.0", "latest"), "prod": ("1.1.0",)},
        }
        digests = [DIGEST_A, DIGEST_B]
        with_registries = WebContext(catalog=catalog, environments=configured)
        without = WebContext(catalog=catalog)  # catalog serve without IMGCTL_REGISTRY_*
        for context in (with_registries, without):
            assert await placements(context, "shop/web", digests, None) == expected
            assert await placements(context, "shop/web", digests, ["dev"]) == {
                DIGEST_A: {"dev": ("1.0.0",)},
                DIGEST_B: {"dev": ("1.1.0", "latest")},
            }
            assert await placements(context, "shop/web", [DIGEST_A], []) == {}
            assert await placements(context, "shop/web-admin", digests, None) == {
                DIGEST_A: {"qa": ("9",)}
            }
    finally:
        await catalog.aclose()
