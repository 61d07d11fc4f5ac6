"""`imgctl catalog serve` as a test fixture."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from .registry import free_port


@contextmanager
def catalog_server(
    imgctl: str,
    directory: Path,
    token: str | None = "write-me",
    database_url: str | None = None,
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A catalog API with one write token, on a free port; yields its base URL.

    The database is a SQLite file in ``directory`` unless ``database_url`` names another.
    ``token=None`` starts it without a tokens file; ``flags`` are added to the command line.
    Its output is in ``directory / "catalog.log"``.
    """
    tokens: list[str] = []
    if token is not None:
        path = directory / "tokens.yaml"
        path.write_text(f"tokens:\n  - name: ci\n    token: {token}\n    is_disabled: false\n")
        tokens = ["--tokens-file", str(path)]
    address = f"127.0.0.1:{free_port()}"
    log = directory / "catalog.log"
    process = subprocess.Popen(
        [
            imgctl,
            "catalog",
            "serve",
            "--http-address",
            address,
            *tokens,
            "--database-url",
            database_url or f"sqlite:///{directory / 'c.db'}",
            *flags,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=None if env is None else dict(env),
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
