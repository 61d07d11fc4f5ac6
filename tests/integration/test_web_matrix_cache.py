"""The release matrix reads the catalog again exactly when it changed (CatalogStore.version).

On both databases (the conftest's ``store``: SQLite and PostgreSQL), through the store's own
writes: a promotion, a tag change, a delete each show on the next page; no write, no read.
"""

from __future__ import annotations

from imgctl.promotion.environments import Environments
from imgctl.store import CatalogStore
from imgctl.web import CatalogTokenAccess, Viewer, WebContext
from imgctl.web._matrix import Filters, build_matrix
from imgctl.web._render import Web

ENV = {"IMGCTL_REGISTRY_DEV": "reg.example.com/dev", "IMGCTL_REGISTRY_PROD": "reg.example.com/prod"}
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


async def cells(web: Web) -> dict[str, dict[str, tuple[str, tuple[str, ...]] | None]]:
    matrix = await build_matrix(web, Viewer("test", public=True), Filters())
    return {
        row.repository: {
            environment: (cell.current.id, cell.current.tags)
            if (cell := row.cells.get(environment))
            else None
            for environment in matrix.environments
        }
        for row in matrix.rows
    }


async def test_each_write_shows_on_the_next_page(store: CatalogStore) -> None:
    web = Web(
        WebContext(catalog=store, environments=Environments.from_environment(ENV)),
        CatalogTokenAccess(None, public=True),
    )
    assert await cells(web) == {}
    await store.record_promotion(
        digest=A,
        name="reg.example.com/dev/app",
        tags=["1.0"],
        environment="dev",
        promoted_by="a@example.com",
        source=f"reg.example.com/ci/app:1.0@{A}",
    )
    assert await cells(web) == {"app": {"dev": (A, ("1.0",))}}
    first = web.context.extra["matrix.snapshot"]
    assert await cells(web) == {"app": {"dev": (A, ("1.0",))}}
    assert web.context.extra["matrix.snapshot"] is first  # nothing written: not read again

    await store.record_promotion(
        digest=A,
        name="reg.example.com/prod/app",
        tags=["1.0"],
        environment="prod",
        promoted_by="b@example.com",
        source=f"reg.example.com/dev/app:1.0@{A}",
    )
    await store.record_promotion(
        digest=B,
        name="reg.example.com/dev/app",
        tags=["1.1"],
        environment="dev",
        promoted_by="a@example.com",
        source=f"reg.example.com/ci/app:1.1@{B}",
    )
    assert await cells(web) == {"app": {"dev": (B, ("1.1",)), "prod": (A, ("1.0",))}}
    # A tag moved by PUT-like writes (only the tags change).
    await store.put(B, "reg.example.com/dev/app", ["1.1", "latest"], environment="dev")
    assert (await cells(web))["app"]["dev"] == (B, ("1.1", "latest"))
    # A delete: the count changes.
    assert await store.delete(A, "prod") == 1
    assert await cells(web) == {"app": {"dev": (B, ("1.1", "latest"))}}
    assert web.context.extra["matrix.snapshot"] is not first
