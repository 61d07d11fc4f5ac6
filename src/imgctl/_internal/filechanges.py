"""Noticing that a file the server rereads (tokens, watches) changed on disk.

A change is seen by ``stat``: the symlink-resolved path, inode, device, size, modification and
status-change times. That covers an edit in place (size or times change), an atomic rename (a
new inode) and a Kubernetes ConfigMap or Secret update (the ``..data`` symlink is retargeted, so
the resolved path changes). The status-change time (ctime) cannot be set from user space, so a
same-size rewrite whose modification time was put back (``cp -p``, ``tar``, ``touch -r``) is
seen too. The file is looked at no more than every ``interval`` seconds: a ``stat`` per request
would cost more than the check it guards.

With ``settle``, a change is reported only once two looks in a row saw the same new signature,
so a file caught half-written by an in-place edit is not taken for the new version.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Final

__all__ = ["CHECK_INTERVAL_S", "FileChanges", "Signature", "signature"]

CHECK_INTERVAL_S: Final = 0.5

Signature = tuple[str, int, int, int, int, int]
"""(resolved path, inode, device, size, mtime in ns, ctime in ns)."""


def signature(path: Path) -> Signature | None:
    """``path``'s signature, or None when it does not exist (or cannot be looked at)."""
    try:
        info = path.stat()
        target = os.path.realpath(path)
    except OSError:
        return None
    return (target, info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FileChanges:
    """Tells, at most every ``interval`` seconds, whether ``path`` changed since last reported.

    The first signature is taken when this is built: read the file after building it, so a
    change made between the two is reported (and read again) rather than missed.
    """

    def __init__(self, path: Path, *, interval: float = CHECK_INTERVAL_S, settle: bool = False):
        self.path = path
        self.interval = interval
        self._settle = settle
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._reported = signature(path)
        self._seen = self._reported

    @property
    def exists(self) -> bool:
        """Whether the file existed at the last reported look."""
        return self._reported is not None

    def poll(self, now: float | None = None) -> bool:
        """True once for each change, when a look is due; False otherwise."""
        now = time.monotonic() if now is None else now
        if now - self._checked_at < self.interval:
            return False
        with self._lock:
            if now - self._checked_at < self.interval:
                return False  # another thread looked meanwhile
            self._checked_at = now
            current = signature(self.path)
            previous, self._seen = self._seen, current
            if current == self._reported:
                return False
            if self._settle and current != previous:
                return False  # still changing, or just changed: look once more first
            self._reported = current
            return True
