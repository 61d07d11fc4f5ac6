"""End to end: real ssh-agent and key files -> `imgctl token` -> `imgctl idp serve` -> verifier."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import trustme

from imgctl.identity.verifier import Principal, TokenVerifier, VerifierSettings

from ..conftest import IMGCTL
from ..support.idp import Idp
from ..support.idp import start_idp as support_start_idp
from ..support.sshkeys import KEY_KINDS, Agent, Key, keygen

AUDIENCE = "https://imgctl.example.com"
SECRET = "idp-client-secret"
GROUP = "engineering@example.com"


def start_idp(directory: Path, keys: dict[str, Key], *, tls: trustme.CA | None = None) -> Idp:
    users = {
        user: {"keys": [key.line], "email": f"{user}@example.com", "groups": [GROUP]}
        for user, key in keys.items()
    }
    if "u-ed25519" in keys:  # one key listed for two users: the JWT's sub picks the user
        users["outsider"] = {"keys": [keys["u-ed25519"].line], "groups": ["visitors"]}
    return support_start_idp(IMGCTL, directory, users, audiences=[AUDIENCE], secret=SECRET, tls=tls)


@pytest.fixture(scope="module")
def user_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("userkeys")
    return {f"u-{kind}": keygen(directory, kind) for kind in KEY_KINDS}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, user_keys: dict[str, Key]) -> Iterator[Idp]:
    server = start_idp(tmp_path_factory.mktemp("idp"), user_keys)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, user_keys: dict[str, Key]) -> Iterator[Agent]:
    running = Agent(tmp_path_factory.mktemp("agent"))
    running.add(*user_keys.values())
    yield running
    running.stop()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return env | {"HOME": str(home), "USER": "nobody"} | extra


def token_cmd(idp: Idp, user: str, *extra: str) -> list[str]:
    return [
        IMGCTL,
        "token",
        "--dex-url",
        idp.url,
        "--client-secret",
        SECRET,
        "--username",
        user,
        "--audience",
        AUDIENCE,
        *extra,
    ]


def verify(idp: Idp, *tokens: str, groups: tuple[str, ...] = (GROUP,)) -> Principal:
    """Verify tokens with one verifier (so it keeps its JWKS cache); the last principal."""
    settings = VerifierSettings(issuer_url=idp.url, audience=AUDIENCE, allowed_groups=groups)

    async def run() -> Principal:
        async with TokenVerifier(settings) as verifier:
            return [await verifier.verify(token) for token in tokens][-1]

    return asyncio.run(run())


@pytest.mark.parametrize("kind", list(KEY_KINDS))
def test_agent_keys_of_every_type_get_a_token_the_verifier_accepts(
    idp: Idp, agent: Agent, tmp_path: Path, kind: str
) -> None:
    # The agent holds all five keys; the issuer knows only one of them for this user, so the
    # client must move past access_denied until the right key answers.
    result = subprocess.run(
        token_cmd(idp, f"u-{kind}"),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    principal = verify(idp, token)
    assert principal.email == f"u-{kind}@example.com"
    assert principal.groups == (GROUP,)
    assert SECRET not in result.stderr


def test_file_key_without_agent(idp: Idp, user_keys: dict[str, Key], tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    for suffix in ("", ".pub"):
        source = Path(str(user_keys["u-ecdsa384"].private) + suffix)
        (ssh / f"id_ecdsa{suffix}").write_bytes(source.read_bytes())
    (ssh / "id_ecdsa").chmod(0o600)
    result = subprocess.run(
        token_cmd(idp, "u-ecdsa384"),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    verify(idp, result.stdout.strip())
    cache = tmp_path / ".cache" / "imgctl" / "tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # The second call is served from the cache: same token, no key needed any more.
    for key_file in ssh.iterdir():
        key_file.unlink()
    again = subprocess.run(
        token_cmd(idp, "u-ecdsa384"),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=60,
    )
    assert again.stdout == result.stdout


def run_on_a_terminal(argv: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal, typing ``answer`` at the passphrase prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execve(argv[0], argv, env)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"assphrase" in output:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_passphrase_protected_key_asks_on_the_terminal(tmp_path: Path) -> None:
    key = keygen(tmp_path / ".ssh", "ed25519", passphrase="open sesame", name="id_ed25519")
    local = start_idp(tmp_path / "idp2", {"u-ed25519": key})
    try:
        code, output = run_on_a_terminal(
            token_cmd(local, "u-ed25519"), clean_env(tmp_path), "open sesame"
        )
        assert code == 0, output
        token = output.strip().splitlines()[-1]
        verify(local, token)
        assert "open sesame" not in output
        wrong, output = run_on_a_terminal(
            token_cmd(local, "u-ed25519", "--no-cache"), clean_env(tmp_path), "wrong"
        )
        assert wrong == 3  # signing in failed (README "Exit codes")
        assert "imgctl: error: no usable SSH key" in output
        assert "wrong" not in output.replace("wrong passphrase", "")
        # Without a terminal nobody can be asked: a clear error, not a hang.
        no_tty = subprocess.run(
            token_cmd(local, "u-ed25519", "--no-cache"),
            capture_output=True,
            text=True,
            env=clean_env(tmp_path),
            stdin=subprocess.DEVNULL,
            timeout=60,
            start_new_session=True,
        )
        assert no_tty.returncode == 3
        assert "ssh-add" in no_tty.stderr
    finally:
        local.stop()


def test_auth_login_shows_who_and_groups(idp: Idp, agent: Agent, tmp_path: Path) -> None:
    argv = token_cmd(idp, "u-rsa")
    argv[1:2] = ["auth", "login"]
    result = subprocess.run(
        [*argv, "--show-token"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"logged in as u-rsa <u-rsa@example.com> at {idp.url}"
    assert lines[1] == f"groups: {GROUP}"
    assert "ssh-rsa" in lines[2]
    assert jwt.get_unverified_header(lines[3])["alg"] == "RS256"


def test_unknown_user_and_no_keys_fail_clearly(idp: Idp, agent: Agent, tmp_path: Path) -> None:
    denied = subprocess.run(
        token_cmd(idp, "mallory"),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket),
        timeout=60,
    )
    assert denied.returncode == 3
    assert "refused every SSH key for user 'mallory'" in denied.stderr
    none = subprocess.run(
        token_cmd(idp, "u-rsa"), capture_output=True, text=True, env=clean_env(tmp_path), timeout=60
    )
    assert none.returncode == 3
    assert "no usable SSH key" in none.stderr
    bad_client = subprocess.run(
        [*token_cmd(idp, "u-rsa"), "--client-secret", "nope"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket),
        timeout=60,
    )
    assert bad_client.returncode == 3
    assert "refused client 'imgctl'" in bad_client.stderr


def test_group_check_at_the_verifier(idp: Idp, agent: Agent, tmp_path: Path) -> None:
    from imgctl.errors import InvalidTokenError

    result = subprocess.run(
        token_cmd(idp, "outsider"),
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(InvalidTokenError) as caught:
        verify(idp, result.stdout.strip())
    assert caught.value.reason == "group_not_allowed"


def test_rotation_while_serving(idp: Idp, agent: Agent, tmp_path: Path) -> None:
    env = clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket)

    def fresh_token() -> str:
        run = subprocess.run(
            token_cmd(idp, "u-ed25519", "--no-cache"),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    before = fresh_token()
    rotated = subprocess.run(
        [IMGCTL, "idp", "rotate-key", "--config", str(idp.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    after = fresh_token()
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    # One verifier: it caches the JWKS with the old key, then meets the new kid and refetches.
    verify(idp, before, after)


def test_https_issuer(tmp_path: Path, user_keys: dict[str, Key], agent: Agent) -> None:
    ca = trustme.CA()
    local = start_idp(tmp_path / "tls-idp", {"u-ecdsa256": user_keys["u-ecdsa256"]}, tls=ca)
    try:
        assert local.url.startswith("https://")
        assert local.ca_file is not None
        result = subprocess.run(
            token_cmd(local, "u-ecdsa256"),
            capture_output=True,
            text=True,
            env=clean_env(tmp_path, SSH_AUTH_SOCK=agent.socket, SSL_CERT_FILE=str(local.ca_file)),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        untrusted = subprocess.run(
            token_cmd(local, "u-ecdsa256", "--no-cache"),
            capture_output=True,
            text=True,
            env=clean_env(tmp_path / "other", SSH_AUTH_SOCK=agent.socket),
            timeout=60,
        )
        assert untrusted.returncode == 3
        assert "cannot reach the issuer" in untrusted.stderr
    finally:
        local.stop()
