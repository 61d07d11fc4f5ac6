"""Running awaitables together so that one failure neither cancels nor hides the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

__all__ = ["gather_all"]

_T = TypeVar("_T")


async def gather_all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run awaitables together; if any fails, wait for the rest, then raise the first error."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    values: list[_T] = []
    for outcome in results:
        if isinstance(outcome, BaseException):
            raise outcome
        values.append(outcome)
    return values
