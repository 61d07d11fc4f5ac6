"""The repository watches: ``/watches`` and ``/api/watches`` (issue 20 item 4).

The web form of ``imgctl scan status``: each watch's Ready condition (status, reason, message),
its last scan, the latest tag under its policy and what auto-promotion did (the last tag and
digest it promoted, and the Ready message, which says when an auto-promotion failed and why).
On ``imgctl server`` the statuses are the scanner's own (:meth:`Scanner.statuses`, each
:meth:`WatchStatus.as_json`), so ``/api/watches`` answers the document ``GET /scan`` and
``imgctl scan status -o json`` print, less the watches the caller may not read. ``imgctl
catalog serve`` runs no scanner: it shows what the server saved in the shared database (the
states, without the watches file's specs).

A watch names environments: the one whose registry holds its image, and its autoPromote's
``from`` and ``to``. It is shown when the caller may read each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imgctl.scan.state import EPOCH, WatchState

from ._access import Viewer
from ._matrix import environment_order
from ._render import CurrentViewer, Web, rfc3339

__all__ = ["NoWatches", "WatchRow", "WatchesView", "build_watches", "register"]

_NO_WATCHES: Final = "this server watches no repositories"
_NO_WATCHES_HINT: Final = "start imgctl server with --watches FILE (or IMGCTL_WATCHES_FILE)"


# --------------------------------------------------------------------------- the JSON's schema


class ConditionOut(BaseModel):
    """A Flux-shaped condition."""

    type: str
    status: str = Field(description="True, False or Unknown")
    reason: str
    message: str
    lastTransitionTime: str | None


class LastScanOut(BaseModel):
    """The last scan's result."""

    tagCount: int
    scanTime: str | None
    latestTags: list[str]
    revision: str


class PolicyOut(BaseModel):
    """The tag policy and what it picks."""

    spec: dict[str, Any] | None = Field(description="The policy as the watches file gives it")
    latestTag: str | None
    latestDigest: str | None
    latestImage: str | None


class AutoPromoteOut(BaseModel):
    """The autoPromote edge and what it last promoted."""

    from_: str | None = Field(alias="from")
    to: str | None
    lastPromotedTag: str | None
    lastPromotedDigest: str | None


class WatchOut(BaseModel):
    """One watch's status, as ``GET /scan`` and ``imgctl scan status -o json`` print it."""

    name: str
    image: str
    canonicalImageName: str
    interval: str | None = Field(None, description="Go duration; absent on catalog serve")
    timeout: str | None = None
    suspend: bool | None = None
    lastScanResult: LastScanOut | None
    conditions: list[ConditionOut]
    policy: PolicyOut | None = None
    autoPromote: AutoPromoteOut | None = None
    nextScanAt: str | None = None


class WatchesOut(BaseModel):
    """``GET /api/watches``."""

    watchesFile: dict[str, Any] | None = Field(
        None, description="The watches file in force and whether the file on disk loads"
    )
    watches: list[WatchOut]


class ErrorOut(BaseModel):
    """An error: ``{"error": {"code", "message"}}``."""

    error: dict[str, str]


# --------------------------------------------------------------------------- building it


class NoWatches(Exception):
    """No watches to show in this process (a server without --watches)."""


@dataclass(frozen=True)
class WatchRow:
    """One watch as the page shows it, read from its JSON status."""

    status: dict[str, Any]
    environment: str | None  # where its image is
    story: str | None  # the repository path of its image, for /story/...

    @property
    def name(self) -> str:
        """The watch's name."""
        return str(self.status["name"])

    @property
    def ready(self) -> dict[str, Any]:
        """Its Ready condition."""
        for condition in self.status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return {"type": "Ready", "status": "Unknown", "reason": "", "message": ""}

    @property
    def state(self) -> str:
        """Suspended, else the Ready status: True, False or Unknown."""
        return "Suspended" if self.status.get("suspend") else str(self.ready.get("status"))

    @property
    def scan_time(self) -> datetime | None:
        """When it was last scanned."""
        return _time((self.status.get("lastScanResult") or {}).get("scanTime"))

    @property
    def transition_time(self) -> datetime | None:
        """When Ready last changed (None before the first change: it says 1970)."""
        when = _time(self.ready.get("lastTransitionTime"))
        return when if when is not None and when > EPOCH else None

    @property
    def next_scan(self) -> datetime | None:
        """When it is scanned next."""
        return _time(self.status.get("nextScanAt"))

    @property
    def policy_text(self) -> str:
        """The policy in a few words: ``semver >=1.0.0``, ``alphabetical desc``."""
        spec = (self.status.get("policy") or {}).get("spec")
        if not isinstance(spec, dict):
            return ""
        words = []
        for kind, body in spec.items():
            if kind == "filterTags" and isinstance(body, dict):
                words.append(f"tags matching {body.get('pattern')}")
            elif isinstance(body, dict):
                words.append(" ".join([kind, *(str(v) for v in body.values())]))
        return ", ".join(words)


@dataclass
class WatchesView:
    """What /watches shows."""

    rows: list[WatchRow]
    watches_file: dict[str, Any] | None
    live: bool  # a scanner in this process (else: states saved in the database)
    hidden: int  # watches left out: environments the caller may not read

    def as_json(self) -> dict[str, Any]:
        """``{"watchesFile": ..., "watches": [...]}``, as ``imgctl scan status -o json``."""
        body: dict[str, Any] = {}
        if self.watches_file is not None:
            body["watchesFile"] = self.watches_file
        body["watches"] = [row.status for row in self.rows]
        return body


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _saved_status(state: WatchState) -> dict[str, Any]:
    """A state the server saved, in the shape of its status (no spec: catalog serve has none)."""
    from imgctl.scan.scanner import LATEST_TAGS

    body: dict[str, Any] = {
        "name": state.name,
        "image": state.image,
        "canonicalImageName": state.image,
        "lastScanResult": None,
        "conditions": [
            {
                "type": "Ready",
                "status": state.ready,
                "reason": state.reason,
                "message": state.message,
                "lastTransitionTime": rfc3339(state.transition_time),
            }
        ],
    }
    if state.scan_time is not None:
        body["lastScanResult"] = {
            "tagCount": len(state.tags),
            "scanTime": rfc3339(state.scan_time),
            "latestTags": sorted(state.tags, reverse=True)[:LATEST_TAGS],
            "revision": state.revision,
        }
    if state.latest_tag is not None:
        body["policy"] = {
            "spec": None,
            "latestTag": state.latest_tag,
            "latestDigest": state.latest_digest,
            "latestImage": f"{state.image}:{state.latest_tag}",
        }
    if state.promoted_tag is not None:
        body["autoPromote"] = {
            "from": None,
            "to": None,
            "lastPromotedTag": state.promoted_tag,
            "lastPromotedDigest": state.promoted_digest,
        }
    return body


def _named_environments(status: dict[str, Any], environment: str | None) -> list[str | None]:
    promote = status.get("autoPromote") or {}
    return [environment, promote.get("from"), promote.get("to")]


async def build_watches(web: Web, viewer: Viewer) -> WatchesView:
    """The watches the caller may read; NoWatches when this process has none to show."""
    context = web.context
    scanner = context.scanner() if context.scanner is not None else None
    watches_file: dict[str, Any] | None = None
    if scanner is not None:
        statuses = [status.as_json() for status in await scanner.statuses()]
        if scanner.watches_file is not None:
            watches_file = scanner.watches_file.state.as_json()
    elif context.scan_store is not None:
        statuses = [_saved_status(state) for state in await context.scan_store.all()]
    else:
        raise NoWatches
    readable: Sequence[str] | None = None
    if viewer.promotes_to is not None:
        readable = viewer.readable(await environment_order(web))
    rows: list[WatchRow] = []
    hidden = 0
    for status in statuses:
        image = str(status.get("canonicalImageName") or "")
        environment = context.environment_of(image)
        named = _named_environments(status, environment)
        if readable is not None and not all(e is None or e in readable for e in named):
            hidden += 1
            continue
        story = context.repository_path(image, environment) if environment else None
        rows.append(WatchRow(status, environment, story))
    return WatchesView(rows, watches_file, scanner is not None, hidden)


# --------------------------------------------------------------------------- the routes


def register(router: APIRouter, web: Web) -> None:
    """Add ``/watches`` (the page) and ``/api/watches`` (its JSON)."""

    @router.get("/watches", include_in_schema=False)
    async def watches_page(request: Request, viewer: CurrentViewer) -> Response:
        try:
            view: WatchesView | None = await build_watches(web, viewer)
        except NoWatches:
            view = None
        return web.render(
            request,
            "watches.html",
            {"heading": "Watches", "view": view, "no_watches_hint": _NO_WATCHES_HINT},
            viewer=viewer,
        )

    @router.get(
        "/api/watches",
        summary="The repository watches: Ready, last scan, latest tag, auto-promotion",
        response_model=None,
        responses={
            200: {"model": WatchesOut},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            404: {"model": ErrorOut},
        },
    )
    async def watches_api(viewer: CurrentViewer) -> Response:
        try:
            view = await build_watches(web, viewer)
        except NoWatches:
            return JSONResponse(
                {
                    "error": {
                        "code": "no_watches",
                        "message": f"{_NO_WATCHES}: {_NO_WATCHES_HINT}",
                    }
                },
                status_code=404,
            )
        return JSONResponse(view.as_json())
