"""Real OpenSSH for tests: keys made by ssh-keygen, an ssh-agent holding some of them."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .registry import require_binary

KEY_TYPES = {  # name -> ssh-keygen arguments
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


@dataclass(frozen=True)
class KeyPair:
    """A private key file and its public authorized_keys line."""

    private: Path
    public_line: str

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")


def make_key(
    directory: Path, kind: str, *, passphrase: str = "", name: str | None = None
) -> KeyPair:
    """``ssh-keygen`` a key of ``kind`` (see KEY_TYPES) into ``directory``."""
    require_binary("ssh-keygen")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"id_{kind}")
    subprocess.run(
        [
            "ssh-keygen",
            *KEY_TYPES[kind],
            "-q",
            "-N",
            passphrase,
            "-C",
            f"{kind}@test",
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return KeyPair(path, path.with_name(path.name + ".pub").read_text().strip())


@dataclass
class SSHAgent:
    """An ``ssh-agent`` on its own socket, stopped by ``stop``."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    added: list[KeyPair] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return str(self.directory / "agent.sock")

    def start(self) -> SSHAgent:
        require_binary("ssh-agent")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", self.socket],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("ssh-agent did not create its socket")
            time.sleep(0.01)
        return self

    def add(self, key: KeyPair) -> None:
        subprocess.run(
            ["ssh-add", "-q", str(key.private)],
            check=True,
            capture_output=True,
            env={**os.environ, "SSH_AUTH_SOCK": self.socket},
            timeout=30,
        )
        self.added.append(key)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
