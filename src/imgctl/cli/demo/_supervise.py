"""Process supervision for ``imgctl demo``: children, signals, readiness, failed steps.

Every child runs in its own session (Ctrl-C in the terminal reaches the demo only) and is
registered for cleanup in the same breath as it starts, with interrupts held meanwhile, so an
interrupt can never leave a process that cleanup does not know about. Stopping sends SIGTERM to
each child's process group, waits, then kills what is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

__all__ = [
    "CLIENT_TIMEOUT",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "Child",
    "Signals",
    "StepFailed",
    "free_ports",
    "last_line",
    "signal_group",
    "start_child",
    "step",
    "stop_children",
    "wait_ready",
]

START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 60.0
# terminate, then kill: the server gets a 1 s grace period, everything else stops at once.
STOP_TIMEOUT = 5.0


class StepFailed(Exception):
    """A step of the story went wrong: which step, why, and the log that says more."""

    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.log = log


@contextlib.contextmanager
def step(label: str, log: Path | None = None) -> Iterator[None]:
    """Turn any error inside into a StepFailed naming ``label``."""
    try:
        yield
    except (StepFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise StepFailed(label, str(exc) or type(exc).__name__, log) from exc


@dataclass
class Child:
    """A process the demo started, with the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


class Signals:
    """SIGINT and SIGTERM become KeyboardInterrupt, except inside ``deferred()`` blocks.

    Starting a child and registering it for cleanup is one deferred block, so an interrupt can
    never leave a process that cleanup does not know about.
    """

    def __init__(self) -> None:
        self.code: int | None = None
        self._depth = 0
        self._pending = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only: Python delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """Cleanup is running: further Ctrl-C presses must not cut it short."""
        for signum in self._previous:
            signal.signal(signum, signal.SIG_IGN)

    def restore(self) -> None:
        """Give the signals back to whoever had them."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.code is None:
            self.code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold interrupts until the block ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending:
                self._pending = False
                raise KeyboardInterrupt


def start_child(
    signals: Signals,
    children: list[Child],
    name: str,
    argv: list[str],
    env: dict[str, str],
    *,
    log: Path,
    cwd: Path,
) -> Child:
    """Start a child in its own session, its output to ``log``, and append it to ``children``."""
    with signals.deferred():
        handle = log.open("ab")
        try:
            # Own session: Ctrl-C in the terminal reaches the demo only, and the demo
            # stops the children in order (killpg also reaches anything they started).
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException:
            handle.close()
            raise
        child = Child(name, process, log, handle)
        children.append(child)
    return child


def stop_children(children: list[Child]) -> None:
    """Terminate every child (whole process group), wait, kill what is left."""
    for child in children:
        signal_group(child.process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        signal_group(child.process, signal.SIGKILL)
        child.process.wait()
        child.handle.close()


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a child's process group, only while the child is unreaped (its pid is ours)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def wait_ready(services: list[tuple[Child, str]], what: str) -> None:
    """Poll each URL until it answers (any HTTP status); fail fast when its process exits."""
    import httpx

    pending = list(services)
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while pending:
            for child, url in list(pending):
                try:
                    client.get(url)
                except httpx.HTTPError:
                    code = child.process.poll()
                    if code is not None:
                        said = last_line(child.log.read_text(errors="replace"))
                        raise StepFailed(
                            what, f"{child.name} exited with status {code} ({said})", child.log
                        ) from None
                    if time.monotonic() > deadline:
                        raise StepFailed(
                            what,
                            f"{child.name} did not answer {url} within {START_TIMEOUT:g} s",
                            child.log,
                        ) from None
                    continue
                pending.remove((child, url))
            if pending:
                time.sleep(0.05)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all sockets held open together, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
