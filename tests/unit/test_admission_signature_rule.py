"""--require-signature ENV=KEYREF: the strict parser and the verdict memory (no registry)."""

from __future__ import annotations

import pytest

from imgctl.catalog.signatures import _Memory, parse_requirements, requirements_from
from imgctl.errors import UsageError


def test_items_group_by_environment_in_order_without_repeats() -> None:
    assert parse_requirements(
        ["prod=a.pub", "staging=awskms:///alias/k", "prod=b.pub", " prod = a.pub "]
    ) == {"prod": ("a.pub", "b.pub"), "staging": ("awskms:///alias/k",)}


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("prod", "has no '='"),
        ("=a.pub", "names no environment"),
        ("prod=", "names no key"),
        ("PROD=a.pub", "environment 'PROD' is not lower case"),
        ("prod-=a.pub", "is not an environment name"),
        ("pr od=a.pub", "is not an environment name"),
        ("prod=a b.pub", "holds whitespace"),
        ("prod=a\x00.pub", "holds whitespace"),
        ("prod=" + "k" * 5000, "too long"),
    ],
)
def test_bad_items_are_refused_naming_the_item(item: str, problem: str) -> None:
    with pytest.raises(UsageError, match="--require-signature") as refused:
        parse_requirements([item])
    assert problem in refused.value.message
    assert refused.value.hint is not None
    assert "ENV=KEYREF" in refused.value.hint


def test_flags_replace_the_variable() -> None:
    environ = {"IMGCTL_ADMISSION_REQUIRE_SIGNATURE": "dev=d.pub,, qa=q.pub"}
    assert requirements_from([], environ) == (
        {"dev": ("d.pub",), "qa": ("q.pub",)},
        "IMGCTL_ADMISSION_REQUIRE_SIGNATURE",
    )
    assert requirements_from(["prod=p.pub"], environ) == (
        {"prod": ("p.pub",)},
        "--require-signature",
    )
    with pytest.raises(UsageError, match=r"^IMGCTL_ADMISSION_REQUIRE_SIGNATURE 'dev'"):
        requirements_from([], {"IMGCTL_ADMISSION_REQUIRE_SIGNATURE": "dev"})


def test_memory_expires_refreshes_once_and_stays_bounded() -> None:
    now = [0.0]
    memory: _Memory[str, int] = _Memory(2, lambda: now[0])
    memory.put("a", 1, 10, refresh=True)
    memory.put("b", 2, 10, refresh=False)
    assert memory.get("a") == (1, False)
    now[0] = 6
    assert memory.get("a") == (1, True)  # past half its life: re-check, once
    assert memory.get("a") == (1, False)
    assert memory.get("b") == (2, False)  # a negative is never refreshed early
    memory.put("c", 3, 10, refresh=True)  # "a" was used least recently... then "b": "a" goes
    assert memory.get("a") is None
    assert len(memory) == 2
    now[0] = 10
    assert memory.get("b") is None  # expired
    assert memory.get("c") == (3, False)
