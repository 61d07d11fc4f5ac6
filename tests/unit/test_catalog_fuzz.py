"""Fuzz the catalog API from its own OpenAPI schema: no input may produce a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from imgctl.catalog.admission import AdmissionWebhook, Exemptions
from imgctl.catalog.api import create_catalog_app
from imgctl.catalog.tokens import TokenFile
from imgctl.store import CatalogStore


def _app(path: Path) -> Any:
    tokens_file = path / "tokens.yaml"
    tokens_file.write_text(
        "tokens:\n  - name: fuzz\n    token: fuzz-token\n    is_disabled: false\n"
    )
    store = asyncio.run(CatalogStore.open(f"sqlite:///{path / 'catalog.db'}"))
    app = create_catalog_app(store, TokenFile(tokens_file))
    return AdmissionWebhook(app, store.promoted, Exemptions(), store.known), store


@pytest.fixture(scope="module")
def catalog_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app, store = _app(tmp_path_factory.mktemp("fuzz"))
    yield app
    asyncio.run(store.aclose())


def test_no_input_makes_the_api_fail(catalog_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", catalog_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5  # images list/get/put/delete, health, admission
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": "Bearer fuzz-token"})
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        check()
