"""Real OpenSSH for tests: keys made by ssh-keygen, an ssh-agent holding some of them."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY_KINDS = {  # name -> ssh-keygen arguments
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


def require(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed; these tests need OpenSSH")


@dataclass(frozen=True)
class Key:
    """A key pair ssh-keygen made: private file and its .pub line."""

    private: Path
    line: str

    @property
    def pub(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.line.split()[1])


def keygen(directory: Path, kind: str, *, name: str | None = None, passphrase: str = "") -> Key:
    require("ssh-keygen")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"id_{kind}")
    comment = f"{kind} test key"
    subprocess.run(
        ["ssh-keygen", *KEY_KINDS[kind], "-q", "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Key(path, path.with_name(path.name + ".pub").read_text().strip())


class Agent:
    """A real OpenSSH ssh-agent in the foreground (-D) on a private socket."""

    def __init__(self, directory: Path) -> None:
        require("ssh-agent")
        require("ssh-add")
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = str(directory / "agent.sock")
        self.process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", self.socket],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The socket file appears at bind(), before the agent listens: until then a client's
        # connect() is refused (ssh-add exits 2). Wait until a connection is accepted.
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ssh-agent did not listen on its socket")
            time.sleep(0.01)

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        return True

    def add(self, *keys: Key) -> None:
        for key in keys:
            subprocess.run(
                ["ssh-add", "-q", str(key.private)],
                check=True,
                capture_output=True,
                env={**os.environ, "SSH_AUTH_SOCK": self.socket},
                timeout=30,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
