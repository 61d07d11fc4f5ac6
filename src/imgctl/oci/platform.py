"""Platform selectors (``os/arch[/variant]``) as ``imgctl copy --platform`` takes them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from imgctl.errors import UsageError
from imgctl.oci.manifest import Platform

__all__ = ["describe", "matches", "parse_platform"]

# OCI platform values are short lowercase-ish tokens (linux, amd64, arm64, v8, s390x, windows).
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_LENGTH = 200


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch`` or ``os/arch/variant`` strictly; anything else is a UsageError."""
    hint = "write the platform as os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7"
    if len(text) > _MAX_LENGTH:
        raise UsageError(f"platform is {len(text)} characters, at most {_MAX_LENGTH}", hint=hint)
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise UsageError(
            f"platform {text!r} has {len(parts)} part(s); expected os/arch[/variant]", hint=hint
        )
    names = ("os", "architecture", "variant")
    for name, part in zip(names, parts, strict=False):
        if not part:
            raise UsageError(f"platform {text!r} has an empty {name}", hint=hint)
        if not _PART.fullmatch(part):
            raise UsageError(
                f"platform {text!r}: {name} {part!r} is not a platform name "
                "(letters, digits, '.', '_', '-')",
                hint=hint,
            )
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def matches(wanted: Platform, have: Platform) -> bool:
    """True when ``have`` is the platform asked for; no variant asked matches any variant."""
    if wanted.os != have.os or wanted.architecture != have.architecture:
        return False
    return wanted.variant is None or wanted.variant == have.variant


def describe(platforms: Sequence[Platform | None]) -> str:
    """A comma-separated list of platforms for error messages."""
    return ", ".join(str(p) if p is not None else "(no platform)" for p in platforms) or "none"
