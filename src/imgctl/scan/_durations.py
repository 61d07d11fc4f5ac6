"""Go durations (``time.ParseDuration``), as Flux's ImageRepository takes interval and timeout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from imgctl._internal.messages import yaml_kind
from imgctl.errors import UsageError
from imgctl.scan._fields import show

__all__ = [
    "DURATION_HINT",
    "FLUX_INTERVAL_PATTERN",
    "FLUX_INTERVAL_UNITS",
    "FLUX_TIMEOUT_PATTERN",
    "FLUX_TIMEOUT_UNITS",
    "parse_duration",
]

_NANOSECONDS: Final[Mapping[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu; Go accepts both
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NANOSECONDS: Final = (1 << 63) - 1  # Go's time.Duration is an int64 of nanoseconds
_DIGITS: Final = frozenset("0123456789")
DURATION_HINT: Final = "give a duration like 1m, 90s or 1h30m"
# The patterns of Flux's ImageRepository CRD; the API server refuses what does not match them.
FLUX_INTERVAL_UNITS: Final = ("ms", "s", "m", "h")
FLUX_TIMEOUT_UNITS: Final = ("ms", "s", "m")


def _flux_pattern(units: tuple[str, ...]) -> str:
    return r"^([0-9]+(\.[0-9]+)?(" + "|".join(units) + "))+$"


FLUX_INTERVAL_PATTERN: Final = _flux_pattern(FLUX_INTERVAL_UNITS)
FLUX_TIMEOUT_PATTERN: Final = _flux_pattern(FLUX_TIMEOUT_UNITS)


def _duration_nanoseconds(text: str) -> int:
    """Go's time.ParseDuration, minus negative values; raise ValueError saying what is wrong."""
    rest = text
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    else:
        negative = False
    if rest == "0":
        return 0
    if not rest:
        raise ValueError("it is empty" if not text else "a sign needs a number after it")
    total = 0
    pos, end = 0, len(rest)
    while pos < end:
        start = pos
        while pos < end and rest[pos] in _DIGITS:
            pos += 1
        whole = rest[start:pos]
        fraction = ""
        if pos < end and rest[pos] == ".":
            pos += 1
            fraction_start = pos
            while pos < end and rest[pos] in _DIGITS:
                pos += 1
            fraction = rest[fraction_start:pos]
        if not whole and not fraction:
            raise ValueError(f"expected a number at {rest[start:]!r}")
        unit_start = pos
        while pos < end and rest[pos] not in _DIGITS and rest[pos] != ".":
            pos += 1
        unit = rest[unit_start:pos]
        if not unit:
            raise ValueError(f"{rest[start:pos]!r} needs a unit (ns, us, ms, s, m or h)")
        scale = _NANOSECONDS.get(unit)
        if scale is None:
            raise ValueError(f"unknown unit {unit!r}; the units are ns, us, ms, s, m and h")
        total += int(whole or "0") * scale
        if fraction:
            # Truncated to whole nanoseconds, as Go does.
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_NANOSECONDS:
            raise ValueError("it is longer than the longest Go duration (about 292 years)")
    if negative and total:
        raise ValueError("it is negative")
    return total


def parse_duration(
    value: object, *, field: str, flux_units: tuple[str, ...] | None = None
) -> float:
    """Parse a Go duration string (``1m0s``, ``90s``, ``1h30m``, ``1.5h``) into seconds.

    With ``flux_units`` the string must also match Flux's CRD pattern for those units, and a
    mismatch is reported with the API server's message for the field, then what is wrong in
    imgctl's words.
    """
    if not isinstance(value, str):
        detail = f"a duration is a string with a unit, not {yaml_kind(value)}"
        raise UsageError(f"{field}: {show(value)} is not a duration; {DURATION_HINT} ({detail})")
    try:
        nanoseconds = _duration_nanoseconds(value)
        problem = None
    except ValueError as exc:
        problem = str(exc)
    if flux_units is not None:
        pattern = _flux_pattern(flux_units)
        if re.fullmatch(pattern, value) is None:
            units = f"{', '.join(flux_units[:-1])} or {flux_units[-1]}"
            detail = f"Flux takes numbers with an optional fraction, each followed by {units}"
            if problem is not None:  # Go's own units, listed in the problem, are not Flux's
                detail = f"{problem.split('; ')[0]}; {detail}"
            raise UsageError(
                f"{field}: Invalid value: {show(value)}: {field} in body should match "
                f"'{pattern}'; {DURATION_HINT} ({detail})"
            )
    if problem is not None:
        raise UsageError(f"{field}: {show(value)} is not a duration; {DURATION_HINT} ({problem})")
    return nanoseconds / 1e9
