"""`imgctl idp serve` as a test fixture: a real issuer process on a loopback port."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from .registry import free_port


@dataclass
class Idp:
    url: str
    config: Path
    process: subprocess.Popen[bytes]
    log: Path
    ca_file: Path | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_idp(
    imgctl: str,
    directory: Path,
    users: dict[str, dict[str, Any]],
    *,
    audiences: list[str],
    secret: str,
    tls: trustme.CA | None = None,
    extra: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Idp:
    """Write an issuer config for ``users`` and start ``imgctl idp serve`` on a free port.

    ``extra`` adds keys to the config file; ``env`` adds variables to the process's environment.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "idp.yaml"
    config.write_text(
        json.dumps(
            {
                "staticClients": [{"id": "imgctl", "secret": secret, "name": "imgctl"}],
                "users": users,
                "allowed_target_audiences": audiences,
                "token_ttl": 600,
                **(extra or {}),
            }
        )
    )
    port = free_port()
    args = [imgctl, "idp", "serve", "--config", str(config), "--address", f"127.0.0.1:{port}"]
    ca_file = None
    scheme = "http"
    if tls is not None:
        pem = directory / "server.pem"
        tls.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
        ca_file = directory / "ca.pem"
        tls.cert_pem.write_to_path(str(ca_file))
        args += ["--tls-cert", str(pem), "--tls-key", str(pem)]
        scheme = "https"
    log = directory / "idp.log"
    with log.open("ab") as output:  # appended: a restarted issuer keeps the first one's lines
        process = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    url = f"{scheme}://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"imgctl idp serve did not start: {log.read_text()}") from None
            time.sleep(0.05)
    return Idp(url, config, process, log, ca_file)
