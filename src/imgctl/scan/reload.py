"""The watches file, reread when it changes: :class:`WatchesFile`.

A change is noticed the way the tokens file's is (:mod:`imgctl._internal.filechanges`: an edit
in place, an atomic rename, a Kubernetes ConfigMap's ``..data`` symlink swap), looked at no more
than every half second, and taken once two looks in a row saw the same new file, so a file
caught half-written by an in-place edit is not taken for the new version. The files it names
(``passwordFile``) are read again with it: touching the watches file applies a rotated password.

Unlike the tokens file, a watches file that stops loading does not stop anything: the last
version that loaded stays in force, so a typo cannot stop scanning (or auto-promotion). The
reason is logged at ERROR once per broken version, naming the file and line, and kept in
:attr:`WatchesFile.state` for ``GET /scan`` and the metrics.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from imgctl._internal.filechanges import CHECK_INTERVAL_S, FileChanges
from imgctl._internal.files import read_text
from imgctl.errors import UsageError
from imgctl.scan.watches import WatchConfig, watches_from_text

__all__ = ["CHECK_INTERVAL_S", "Check", "FileState", "WatchesFile"]

log = logging.getLogger("imgctl.scan")

Check = Callable[[WatchConfig], None]
"""More checks a version must pass to be used (the server's autoPromote rules); UsageError."""


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _revision(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class FileState:
    """Whether the file on disk is the version in force, and if not, why."""

    path: Path
    revision: str  # sha256 of the version in force
    loaded_at: datetime  # when the version in force was loaded
    loaded: bool = True  # the file on disk loads (and is the version in force)
    error: str | None = None  # why the file on disk does not load
    transition_time: datetime | None = None  # when ``loaded`` last changed

    @property
    def message(self) -> str:
        """One sentence for the status: what is in force, and why not the file on disk."""
        since = _rfc3339(self.loaded_at)
        if self.loaded:
            return f"loaded {self.path} ({self.revision[:19]}) at {since}"
        return (
            f"watches file {self.path} does not load: {self.error}; the version loaded at "
            f"{since} ({self.revision[:19]}) stays in force until the file is fixed"
        )

    def as_json(self) -> dict[str, object]:
        """The ``watchesFile`` of ``GET /scan``: a Flux-like condition of type Loaded."""
        return {
            "path": str(self.path),
            "revision": self.revision,
            "lastLoadTime": _rfc3339(self.loaded_at),
            "conditions": [
                {
                    "type": "Loaded",
                    "status": "True" if self.loaded else "False",
                    "reason": "Succeeded" if self.loaded else "LoadFailed",
                    "message": self.message,
                    "lastTransitionTime": _rfc3339(self.transition_time or self.loaded_at),
                }
            ],
        }


class WatchesFile:
    """A watches file and the version of it in force; :meth:`poll` notices and loads changes.

    Building one loads the file: UsageError (every problem, with lines) when it does not load
    or ``check`` refuses it, so a bad file stops the start.
    """

    def __init__(
        self,
        path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        check: Check | None = None,
        interval: float = CHECK_INTERVAL_S,
    ) -> None:
        self.path = path
        self._environ = dict(os.environ if environ is None else environ)
        self._check = check
        # Taken before the first read: a change between the two is read again, never missed.
        self._changes = FileChanges(path, interval=interval, settle=True)
        text = read_text(path, "watches file")
        self.config = self._load(text)
        now = datetime.now(UTC)
        self.state = FileState(path, _revision(text), now, transition_time=now)
        self._failed: tuple[str, str] | None = None  # (revision, error) last reported

    @property
    def interval(self) -> float:
        """Seconds between looks at the file."""
        return self._changes.interval

    def _load(self, text: str) -> WatchConfig:
        config = watches_from_text(text, self.path, environ=self._environ)
        if self._check is not None:
            self._check(config)
        return config

    def poll(self) -> WatchConfig | None:
        """The new version when the file changed and loads; None otherwise (logged when broken).

        Blocking (reads and parses the file when it changed): run it off the event loop.
        """
        if not self._changes.poll():
            return None
        try:
            text = read_text(self.path, "watches file")
        except UsageError as exc:
            self._broken("", exc.message)
            return None
        revision = _revision(text)
        try:
            # Parsed even when the text is the version in force: the files it names (a rotated
            # passwordFile) are read again, so touching the watches file applies them.
            config = self._load(text)
        except UsageError as exc:
            self._broken(revision, "; ".join(str(exc).splitlines()))
            return None
        if revision == self.state.revision and config == self.config:
            self._fixed(revision, None)  # back to, or rewritten as, the version in force
            return None
        self._fixed(revision, config)
        return config

    def _broken(self, revision: str, error: str) -> None:
        now = datetime.now(UTC)
        state = self.state
        self.state = replace(
            state,
            loaded=False,
            error=error,
            transition_time=now if state.loaded else state.transition_time,
        )
        if self._failed == (revision, error):
            return  # this broken version was reported already
        self._failed = (revision, error)
        log.error("%s", self.state.message)

    def _fixed(self, revision: str, config: WatchConfig | None) -> None:
        now = datetime.now(UTC)
        was_loaded = self.state.loaded
        if config is not None:
            self.config = config
            since = now if not was_loaded else self.state.transition_time
            self.state = FileState(self.path, revision, now, transition_time=since)
            log.info(
                "watches file %s reloaded (%s): %d watches",
                self.path,
                revision[:19],
                len(config.watches),
            )
        elif not was_loaded:
            self.state = replace(self.state, loaded=True, error=None, transition_time=now)
            log.info("watches file %s loads again; it is the version in force", self.path)
        self._failed = None
