"""The audit trail page and its API (issue 20 item 3): not built yet; see docs/web.md."""

from __future__ import annotations

from fastapi import APIRouter

from ._render import Web

__all__ = ["register"]


def register(router: APIRouter, web: Web) -> None:
    """Add this page's routes to ``router`` (none yet)."""
