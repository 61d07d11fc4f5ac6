"""How long to wait before retrying an HTTP request: exponential backoff, and ``Retry-After``.

One implementation for every client that retries (the registry client, the Slack notifier).
``Retry-After`` comes from a server and is read defensively: seconds or an HTTP date (RFC 9110
10.2.3); anything else, NaN included, is no answer, and the wait is capped by the caller.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "retry_after"]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (from 1): exponential up to ``cap``, with jitter.

    ``base`` doubles with each attempt; the jitter (a factor from 0.5 to 1) keeps clients that
    were refused together from coming back together.
    """
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


def retry_after(
    value: str | None, *, cap: float, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, between 0 and ``cap``; None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)
