"""imgctl generate-key-pair in a real process on a terminal: the password is asked twice."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from imgctl.trust import load_public_key, load_signer

IMGCTL = Path(sys.executable).parent / "imgctl"


def _run_on_a_terminal(args: list[str], answers: list[bytes], cwd: Path) -> tuple[int, bytes]:
    """Run imgctl with a pseudo-terminal as stdin/stdout/stderr, answering each prompt."""
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
    process = subprocess.Popen(
        [str(IMGCTL), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=environ,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break  # the process closed the terminal
                if not chunk:
                    break
                seen += chunk
                if pending and seen.count(b"password") > len(answers) - len(pending):
                    os.write(leader, pending.pop(0) + b"\n")
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), seen
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()


def test_password_is_asked_twice_on_a_terminal(tmp_path: Path) -> None:
    code, seen = _run_on_a_terminal(["generate-key-pair"], [b"typed-pw", b"typed-pw"], tmp_path)
    assert code == 0, seen
    assert b"Enter password for private key:" in seen
    assert b"Enter password for private key again:" in seen
    assert b"typed-pw" not in seen  # not echoed
    signer = load_signer(str(tmp_path / "cosign.key"), environ={"COSIGN_PASSWORD": "typed-pw"})
    payload = b"payload"
    load_public_key(str(tmp_path / "cosign.pub")).verify(payload, signer.sign(payload))


def test_different_passwords_write_nothing(tmp_path: Path) -> None:
    code, seen = _run_on_a_terminal(["generate-key-pair"], [b"one", b"two"], tmp_path)
    assert code == 2, seen
    assert b"passwords do not match" in seen
    assert list(tmp_path.iterdir()) == []
