"""Login hints, end to end: the built-in issuer, ssh-agent, `imgctl server` and the CLI.

A refusal names its cause (wrong audience, another issuer, the issuer URL, the clock), on the
issuer's side and on the server's; a cached token the server refuses is replaced once; `auth
login` and `token` learn the issuer from the server; `auth logout` forgets cached tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ..conftest import IMGCTL
from ..support.deployment import AUDIENCE, ENGINEERING, SECRET, server_env, start_server
from ..support.deployment import stop_process as stop_server
from ..support.httpd import CheckedHTTPServer
from ..support.idp import Idp, start_idp
from ..support.registry import Registry
from ..support.sshkeys import Agent, Key, keygen

OTHER = "https://other.example.com"  # an audience the issuer issues for, not the server's
DOCS = Path(__file__).parents[2] / "docs" / "authentication.md"


def in_docs(line: str, **names: str) -> None:
    """``line`` (real output), its test addresses replaced by the docs', is in the docs."""
    for real, shown in names.items():
        line = line.replace(real, shown)
    assert line in DOCS.read_text(), line


@dataclass
class Setup:
    idp: Idp
    agent: Agent
    key: Key
    server: str
    root: Path
    http: str

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A client environment of its own (HOME holds the token cache); no issuer set."""
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        return (
            base
            | {
                "HOME": str(home),
                "SSH_AUTH_SOCK": self.agent.socket,
                "IMGCTL_CLIENT_SECRET": SECRET,
                "USER": "nobody",
            }
            | extra
        )

    def run(self, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IMGCTL, *args],
            capture_output=True,
            text=True,
            env=self.env(home, **extra),
            timeout=120,
        )


@pytest.fixture(scope="module")
def setup(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("login-hints")
    key = keygen(root / "keys", "ed25519", name="alice")
    with contextlib.ExitStack() as cleanup:
        idp = start_idp(
            IMGCTL,
            root / "idp",
            {"alice": {"keys": [key.line], "email": "alice@example.com", "groups": [ENGINEERING]}},
            audiences=[AUDIENCE, OTHER],
            secret=SECRET,
        )
        cleanup.callback(idp.stop)
        agent = Agent(root / "agent")
        cleanup.callback(agent.stop)
        agent.add(key)
        env = server_env(idp, registries(), registries()) | {
            "IMGCTL_DATABASE_URL": f"sqlite:///{root / 'state.db'}"
        }
        process, address, http, _ = start_server(root, env)
        cleanup.callback(stop_server, process)
        yield Setup(idp, agent, key, address, root, http)


def cached(home: Path) -> dict[str, dict[str, object]]:
    """The token cache: (issuer, audience, user) -> entry."""
    path = home / ".cache" / "imgctl" / "tokens.json"
    document: dict[str, dict[str, object]] = json.loads(path.read_text())
    return {tuple(json.loads(k)): v for k, v in document.items()}  # type: ignore[misc]


def cache_mode(home: Path) -> int:
    return stat.S_IMODE((home / ".cache" / "imgctl" / "tokens.json").stat().st_mode)


# ------------------------------------------------------------------------- at the issuer


def test_an_audience_the_issuer_does_not_issue_for_is_named_not_blamed_on_the_key(
    setup: Setup, tmp_path: Path
) -> None:
    wrong = "https://third.example.com"
    result = setup.run(
        tmp_path, "token", "-u", "alice", "--dex-url", setup.idp.url, "--audience", wrong
    )
    assert result.returncode == 3
    assert f"does not issue tokens for audience '{wrong}'" in result.stderr
    assert f"it allows: {AUDIENCE}, {OTHER}" in result.stderr
    assert "--audience" in result.stderr
    assert "add your public key" not in result.stderr


def test_an_issuer_url_the_issuer_does_not_answer_to_is_corrected(
    setup: Setup, tmp_path: Path
) -> None:
    # The same issuer by another name: the SSH JWT's aud is the URL used, and the issuer
    # accepts only its own.
    alias = setup.idp.url.replace("127.0.0.1", "localhost")
    result = setup.run(tmp_path, "token", "-u", "alice", "--dex-url", alias, "--audience", AUDIENCE)
    assert result.returncode == 3
    assert f"the issuer at {alias} knows itself as {setup.idp.url}" in result.stderr
    assert f"use --dex-url {setup.idp.url}" in result.stderr
    assert "add your public key" not in result.stderr


def test_a_key_the_issuer_does_not_know_still_says_add_your_key(
    setup: Setup, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "keys", "ed25519", name="stranger")
    result = setup.run(
        tmp_path,
        "token",
        "-u",
        "alice",
        "--dex-url",
        setup.idp.url,
        "--audience",
        AUDIENCE,
        "--pubkey-file",
        str(stranger.private),
        SSH_AUTH_SOCK="",
    )
    assert result.returncode == 3
    assert "refused every SSH key for user 'alice'" in result.stderr
    assert "ask an admin to add your public key" in result.stderr


def test_dex_refusing_without_a_reason_gets_every_usual_cause(setup: Setup, tmp_path: Path) -> None:
    # Dex's token exchange answers every failed SSH check with exactly this (INTEROP 2): no
    # error_description. No Dex here, so a listener answers its bytes.
    class DexRefusal(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"error":"access_denied"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    dex = CheckedHTTPServer(("127.0.0.1", 0), DexRefusal)
    threading.Thread(target=dex.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{dex.server_address[1]}"
        result = setup.run(tmp_path, "token", "-u", "alice", "--dex-url", url)
    finally:
        dex.shutdown()
        dex.server_close()
    dex.check()
    assert result.returncode == 3
    assert "refused every SSH key for user 'alice' without saying why" in result.stderr
    assert "`ssh-add -L`" in result.stderr
    assert "for audience 'imgctl' (allowed_target_audiences" in result.stderr
    assert "clock" in result.stderr


# ------------------------------------------------------------------------- at the server


def test_the_server_refusing_the_audience_names_both_and_the_fix_without_a_loop(
    setup: Setup, tmp_path: Path
) -> None:
    first = setup.run(tmp_path, "auth-check", "-u", "alice", "--audience", OTHER, **server(setup))
    assert first.returncode == 3, first.stderr
    assert f"your token is for audience '{OTHER}'" in first.stderr
    assert f"expects '{AUDIENCE}'" in first.stderr
    assert f"pass --audience {AUDIENCE}" in first.stderr
    assert "refused the cached token" not in first.stderr  # it was fresh: no second try
    # Now it is cached: refused, dropped, one fresh sign-in, refused again, explained. Once.
    second = setup.run(tmp_path, "auth-check", "-u", "alice", "--audience", OTHER, **server(setup))
    assert second.returncode == 3, second.stderr
    assert second.stderr.count("refused the cached token") == 1
    assert f"your token is for audience '{OTHER}'" in second.stderr
    # docs/authentication.md shows this very line.
    in_docs(first.stderr.strip(), **{setup.server: "imgctl.example.com:9999"})


def test_a_token_from_another_issuer_is_named_as_such(setup: Setup, tmp_path: Path) -> None:
    other = start_idp(
        IMGCTL,
        tmp_path / "other-idp",
        {"alice": {"keys": [setup.key.line], "groups": [ENGINEERING]}},
        audiences=[AUDIENCE],
        secret=SECRET,
    )
    try:
        result = setup.run(
            tmp_path, "auth-check", "-u", "alice", "--dex-url", other.url, **server(setup)
        )
    finally:
        other.stop()
    assert result.returncode == 3, result.stderr
    assert f"your token was issued by {other.url}" in result.stderr
    assert f"trusts tokens from {setup.idp.url}" in result.stderr
    assert f"--dex-url {setup.idp.url}" in result.stderr


def _tampered(token: str, setup: Setup) -> str:
    head, body, signature = token.split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    return f"{head}.{body}.{flipped}"


def _foreign_key(token: str, setup: Setup) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "gone-key"})


def _expired(token: str, setup: Setup) -> str:
    # Signed with the issuer's own key, as if the clocks disagreed: the cache thinks it valid.
    keys_dir = setup.idp.config.parent / "idp-keys"
    kid = json.loads((keys_dir / "keys.json").read_text())["keys"][-1]["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims |= {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
    pem = (keys_dir / f"{kid}.pem").read_bytes()
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


def _cache_a_spoiled_token(setup: Setup, home: Path, spoil: Callable[[str, Setup], str]) -> str:
    """Sign alice in (her token cached in ``home``), then spoil the cached token; return it."""
    login = setup.run(
        home, "token", "-u", "alice", "--dex-url", setup.idp.url, "--audience", AUDIENCE
    )
    assert login.returncode == 0, login.stderr
    path = home / ".cache" / "imgctl" / "tokens.json"
    document = json.loads(path.read_text())
    (entry,) = document.values()
    bad = spoil(str(entry["token"]), setup)
    entry["token"] = bad
    path.write_text(json.dumps(document))
    return bad


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [(_tampered, "signature"), (_foreign_key, "unknown_kid"), (_expired, "expired")],
)
def test_a_cached_token_the_server_refuses_is_dropped_and_replaced_once(
    setup: Setup,
    tmp_path: Path,
    spoil: Callable[[str, Setup], str],
    reason: str,
) -> None:
    bad = _cache_a_spoiled_token(setup, tmp_path, spoil)

    result = setup.run(tmp_path, "auth-check", "-u", "alice", **server(setup))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("authenticated as alice@example.com")
    assert result.stderr.count("refused the cached token") == 1
    assert f"token rejected ({reason})" in result.stderr
    if reason == "unknown_kid":  # the docs show this one
        in_docs(result.stderr.strip())
    (fresh,) = cached(tmp_path).values()
    assert fresh["token"] != bad
    assert cache_mode(tmp_path) == 0o600


def test_audit_ls_replaces_a_cached_token_the_server_refuses_once(
    setup: Setup, tmp_path: Path
) -> None:
    # The audit trail is read over HTTP, not gRPC: the same rule as promote's (one second try
    # with a fresh token, the first refusal said), through the server's web API.
    bad = _cache_a_spoiled_token(setup, tmp_path, _tampered)
    login = ["-u", "alice", "--dex-url", setup.idp.url, "--audience", AUDIENCE]

    args = ["audit", "ls", *login, "--catalog-url", f"http://{setup.http}", "-o", "json"]
    result = setup.run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout)["events"], list)
    assert result.stderr.count("refused the cached token") == 1
    (fresh,) = cached(tmp_path).values()
    assert fresh["token"] != bad
    assert cache_mode(tmp_path) == 0o600
    # A refusal of a fresh token is not retried: it is explained, exit 3.
    refused = setup.run(tmp_path, *args[:-2], "--token", bad)
    assert refused.returncode == 3, refused.stderr
    assert "refused the cached token" not in refused.stderr


def server(setup: Setup) -> dict[str, str]:
    return {"IMGCTL_SERVER": setup.server}


# ------------------------------------------------------------- learning from the server


def test_auth_login_and_token_learn_the_issuer_and_audience_from_the_server(
    setup: Setup, tmp_path: Path
) -> None:
    login = setup.run(tmp_path, "auth", "login", "-u", "alice", **server(setup))
    assert login.returncode == 0, login.stderr
    lines = login.stdout.splitlines()
    assert lines[0] == (
        f"logged in as alice <alice@example.com> at {setup.idp.url} (named by the imgctl server)"
    )
    assert lines[2].startswith(f"token for audience {AUDIENCE}, valid until")
    # `token` with --server (no IMGCTL_SERVER, no DEX_URL, no audience): the same issuer.
    token = setup.run(tmp_path / "other-home", "token", "-u", "alice", "--server", setup.server)
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == (setup.idp.url, AUDIENCE)
    # An audience given by hand wins, and auth login warns that the server will refuse it.
    other = setup.run(
        tmp_path, "auth", "login", "-u", "alice", "--audience", OTHER, **server(setup)
    )
    assert other.returncode == 0, other.stderr
    assert f"the imgctl server expects audience '{AUDIENCE}', not '{OTHER}'" in other.stderr


def test_without_server_or_issuer_login_says_where_to_get_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [IMGCTL, "auth", "login"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "USER": "nobody"},
        timeout=60,
    )
    assert result.returncode == 2  # a usage error: nothing says where to sign in
    assert "--dex-url" in result.stderr
    assert "--server (IMGCTL_SERVER)" in result.stderr


# ------------------------------------------------------------------------------ logout


def test_auth_logout_forgets_what_it_is_told_and_says_so(setup: Setup, tmp_path: Path) -> None:
    empty = setup.run(tmp_path, "auth", "logout", "--all")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no cached token (in ")
    for audience in (AUDIENCE, OTHER):
        login = setup.run(
            tmp_path, "token", "-u", "alice", "--dex-url", setup.idp.url, "--audience", audience
        )
        assert login.returncode == 0, login.stderr
    assert set(cached(tmp_path)) == {
        (setup.idp.url, AUDIENCE, "alice"),
        (setup.idp.url, OTHER, "alice"),
    }

    one = setup.run(tmp_path, "auth", "logout", "--audience", OTHER, DEX_URL=setup.idp.url)
    assert one.returncode == 0, one.stderr
    assert one.stdout == f"removed token of alice from {setup.idp.url} for audience {OTHER}\n"
    assert set(cached(tmp_path)) == {(setup.idp.url, AUDIENCE, "alice")}
    assert cache_mode(tmp_path) == 0o600
    # The docs' example, for the server's audience: removed, then nothing left.
    docs = {setup.idp.url: "https://dex.example.com", str(tmp_path): "/home/alice"}
    for expected in ("removed token of", "no cached token for"):
        shown = setup.run(
            tmp_path, "auth", "logout", "--dex-url", setup.idp.url, "--audience", AUDIENCE
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(expected)
        in_docs(shown.stdout.strip(), **docs)
    relogin = setup.run(
        tmp_path, "token", "-u", "alice", "--dex-url", setup.idp.url, "--audience", AUDIENCE
    )
    assert relogin.returncode == 0, relogin.stderr

    again = setup.run(tmp_path, "auth", "logout", "--audience", OTHER, DEX_URL=setup.idp.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(
        f"no cached token for issuer {setup.idp.url}, audience {OTHER} (in "
    )

    unsure = setup.run(tmp_path, "auth", "logout")
    assert unsure.returncode == 2
    assert "--all" in unsure.stderr

    everything = setup.run(tmp_path, "auth", "logout", "--all")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout == (
        f"removed token of alice from {setup.idp.url} for audience {AUDIENCE}\n"
    )
    assert cached(tmp_path) == {}
    assert cache_mode(tmp_path) == 0o600
    # The next command signs in again rather than finding a token.
    login = setup.run(tmp_path, "auth", "login", "-u", "alice", **server(setup))
    assert login.returncode == 0, login.stderr
    assert "(signed with ssh-ed25519" in login.stdout
