"""Run ``imgctl registry serve`` (the embedded registry) as a subprocess for tests."""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .registry import free_port

_VENV_IMGCTL = Path(sys.executable).parent / "imgctl"
IMGCTL = str(_VENV_IMGCTL) if _VENV_IMGCTL.exists() else (shutil.which("imgctl") or "imgctl")


@dataclass
class EmbeddedRegistry:
    """A running embedded registry on a loopback port."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait; returns the exit status (kills it after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/v2/")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def start_embedded(
    root: Path,
    cleanup: Callable[[Callable[[], object]], object],
    *,
    htpasswd: Path | None = None,
    timeout: float = 20,
    wrapper: list[str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> EmbeddedRegistry:
    """Start a registry serving ``root``; ``cleanup`` (e.g. addfinalizer) gets its stop at once.

    ``wrapper`` goes before the command (``["strace", ...]``: then ``process`` is the wrapper's);
    ``preexec_fn`` runs in the child before it starts (resource limits).
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}.log"
    last = ""
    for _ in range(5):
        port = free_port()
        args = [IMGCTL, "registry", "serve", "--root", str(root), "--address", f"127.0.0.1:{port}"]
        if htpasswd is not None:
            args += ["--htpasswd", str(htpasswd)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*(wrapper or []), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
            )
        registry = EmbeddedRegistry(root, port, process, log)
        cleanup(registry.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return registry
            time.sleep(0.05)
        last = registry.output()
        registry.stop()
        if "Address already in use" not in last:  # only a port race is worth another try
            break
    raise RuntimeError(f"imgctl registry serve did not start: {last.strip()}")
