"""`imgctl catalog serve` as a test fixture."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .registry import free_port


@contextmanager
def catalog_server(
    imgctl: str, directory: Path, token: str = "write-me", database_url: str | None = None
) -> Iterator[str]:
    """A catalog API with one write token, on a free port; yields its base URL.

    The database is a SQLite file in ``directory`` unless ``database_url`` names another.
    """
    tokens = directory / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: ci\n    token: {token}\n    is_disabled: false\n")
    address = f"127.0.0.1:{free_port()}"
    log = directory / "catalog.log"
    process = subprocess.Popen(
        [
            imgctl,
            "catalog",
            "serve",
            "--http-address",
            address,
            "--tokens-file",
            str(tokens),
            "--database-url",
            database_url or f"sqlite:///{directory / 'c.db'}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://{address}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health/ping", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
