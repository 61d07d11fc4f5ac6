"""Defaults baked into a build: Python's answer to the Go build's ``-ldflags -X``.

``IMGCTL_BUILD_DEFAULT_SOURCE=dev IMGCTL_BUILD_DEFAULT_DESTINATION=prod python -m build`` writes
``imgctl/_build_defaults.json`` into the wheel (see ``setup.py``); a user of that wheel then
runs ``imgctl promote myapp:v1`` with no flags. They rank below flags, environment variables
and the user's config file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

__all__ = ["BUILD_KEYS", "build_default", "build_defaults"]

# IMGCTL_BUILD_DEFAULT_<KEY upper> at build time -> key here.
BUILD_KEYS = (
    "server",
    "source",
    "destination",
    "dex_url",
    "client_id",
    "client_secret",
    "audience",
    "tls",
)


@cache
def build_defaults() -> dict[str, str]:
    """The baked-in defaults (empty in a source checkout)."""
    try:
        text = resources.files("imgctl").joinpath("_build_defaults.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {k: v for k, v in document.items() if k in BUILD_KEYS and isinstance(v, str) and v}


def build_default(key: str) -> str | None:
    """One baked-in default, or None."""
    return build_defaults().get(key)
