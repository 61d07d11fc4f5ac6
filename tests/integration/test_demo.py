"""`imgctl demo` as a user runs it: a subprocess with a bare environment, checked by its story."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from imgctl.cli.demo import _setup, _story, _supervise
from imgctl.cli.demo._image import build_image
from imgctl.identity import _agent
from imgctl.identity.sshjwt import agent_keys, verify_ssh_signature
from imgctl.oci import mediatypes as mt

from ..conftest import IMGCTL

USER = "demo-tester"
DIGEST = r"sha256:[0-9a-f]{64}"
# How long a test waits for a demo that hangs. Not a speed claim (bench/ measures speed): the
# demo takes about 5 s alone and 31 s was seen with a load of 12 on 2 cores.
TIMEOUT = 300


def bare_env(tmp_path: Path, path: str) -> dict[str, str]:
    """What a fresh shell would have: PATH, HOME, a user name; temp files under tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    tmp = tmp_path / "t"  # short: the agent socket must fit in sun_path
    tmp.mkdir(exist_ok=True)
    return {"PATH": path, "HOME": str(home), "LOGNAME": USER, "TMPDIR": str(tmp)}


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions ``path`` (every demo child names its dir)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(path) in arg for arg in process.info["cmdline"] or []):
                found.append(process)
    return found


@pytest.fixture
def reaper(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Demos started by a test; whatever is left of them (and their children) is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    victims: list[psutil.Process] = []
    for process in started:
        with contextlib.suppress(psutil.Error):
            victims += psutil.Process(process.pid).children(recursive=True)
        if process.poll() is None:
            process.kill()
            process.wait()
    victims += processes_under(tmp_path)
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=10)


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``imgctl demo`` to its end."""
    return subprocess.run(
        [IMGCTL, "demo", *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def check_story(output: str) -> str:
    """Every step is there with consistent values; return the promoted digest."""
    for number in range(1, 11):
        assert re.search(rf"^{number}\. ", output, re.MULTILINE), f"step {number} missing"
    pushed = re.search(rf"^   demo/hello:1\.0\.0 +({DIGEST})$", output, re.MULTILINE)
    assert pushed, output
    digest = pushed.group(1)
    dev = re.search(rf"^   dev +127\.0\.0\.1:\d+/demo/hello +({DIGEST})$", output, re.MULTILINE)
    prod = re.search(rf"^   prod +127\.0\.0\.1:\d+/demo/hello +({DIGEST})$", output, re.MULTILINE)
    assert dev, output
    assert prod, output
    assert dev.group(1) == prod.group(1) == digest
    audited = re.search(rf"^   request ([0-9a-f]{{32}}), digest {digest}$", output, re.MULTILINE)
    assert audited, output
    assert re.search(rf"^   127\.0\.0\.1:\d+/demo/hello:1\.0\.0  id {digest}$", output, re.M)
    assert re.search(r"^   Pod using 127\.0\.0\.1:\d+/demo/hello:1\.0\.0 +allowed$", output, re.M)
    assert re.search(r"^   Pod using 127\.0\.0\.1:\d+/demo/unvetted:0\.1\.0 +denied$", output, re.M)
    assert "tag not resolvable: no image promoted to prod is tagged '0.1.0'" in output
    # Signatures: a new key; the promotion signed, the audit row says so with the same key id;
    # imgctl verify passes; admission admits the signed image and denies the unsigned one.
    assert re.search(r"^   signing key    cosign\.pub +new, cosign format", output, re.M)
    assert "the server signs and attests every promotion with cosign.key" in output
    unsigned = re.search(rf"^   demo/unsigned:0\.1\.0 +({DIGEST})  \(never signed\)$", output, re.M)
    assert unsigned, output
    signed = re.search(r"^   signed in prod with key ([0-9a-f]{12}) ", output, re.M)
    assert signed, output
    assert f"   signed: yes, key {signed.group(1)}\n" in output
    assert re.search(
        r"^   \$ imgctl verify 127\.0\.0\.1:\d+/demo/hello:1\.0\.0 --key cosign\.pub -o json\n"
        r"   ok: verified with key cosign\.pub$",
        output,
        re.M,
    ), output
    assert re.search(r"^   Pod using 127\.0\.0\.1:\d+/demo/unsigned:0\.1\.0 +denied$", output, re.M)
    assert re.search(
        r"spec\.containers\[0\]\.image '127\.0\.0\.1:\d+/demo/unsigned:0\.1\.0': no valid "
        rf"signature by key cosign\.pub on {unsigned.group(1)}: no signatures; no valid "
        rf"promotion attestation by key cosign\.pub on {unsigned.group(1)}: no attestations$",
        output,
        re.M,
    ), output
    # Attestations (issue 19): the promotion attested with the same key, the audit row and the
    # catalog entry say so, imgctl attestations verifies it and it names this request.
    hex12 = digest.removeprefix("sha256:")[:12]
    assert (
        f"   attested in prod with the same key (promotion attestation under sha256-{hex12}….att)\n"
    ) in output
    assert "   attested: yes (its promotion attestation names this request)\n" in output
    assert "   signed: true, attested: true (what the server recorded of its promotion)\n" in output
    assert re.search(
        r"^   \$ imgctl attestations 127\.0\.0\.1:\d+/demo/hello:1\.0\.0 --key cosign\.pub "
        r"-o json\n"
        r"   https://k8s\.io/promo-tools/promotion/v1: verified with key cosign\.pub\n"
        rf"   statement https://slsa\.dev/provenance/v1 about sha256:{hex12}…\n"
        rf"   builder urn:imgctl:server:{signed.group(1)}…, "
        rf"requested by {USER}@demo\.imgctl\.local, "
        rf"request {audited.group(1)}$",
        output,
        re.M,
    ), output
    email = f"{USER}@demo.imgctl.local"
    assert f"user {USER} <{email}>" in output
    assert f"$ imgctl auth-check -u {USER} -o json" in output
    assert f"email {email}" in output
    assert "groups release-managers; may promote to dev, prod" in output
    assert f"promote succeeded: {email}, demo/hello:1.0.0 dev -> prod" in output
    assert f"promoted by {email}" in output
    # No token (a JWT starts with eyJ) is printed by the story; only --keep prints one, after it.
    assert "eyJ" not in output.partition("\nEverything keeps running.")[0]
    return digest


def check_clean(tmp_path: Path) -> None:
    """No work directory left, nothing written to the user's HOME, no process left."""
    assert list((tmp_path / "t").iterdir()) == []
    assert list((tmp_path / "home").iterdir()) == []
    assert processes_under(tmp_path) == []


def test_demo_tells_the_whole_story(tmp_path: Path, reaper: list[subprocess.Popen[str]]) -> None:
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.fail("OpenSSH's ssh-agent and ssh-add are needed for this test")
    result = run_demo(bare_env(tmp_path, os.environ["PATH"]))
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    check_story(output)
    assert "held by a private ssh-agent (added with ssh-add)" in output
    assert re.search(
        r"^Done in \d+\.\d s: promoted, signed, attested, verified, recorded, admitted\.$",
        output,
        re.M,
    )
    root = re.search(r"started under (\S+)$", output, re.M)
    assert root
    assert root.group(1).startswith(str(tmp_path / "t"))
    assert f"Stopped everything and removed {root.group(1)}." in output
    check_clean(tmp_path)


def test_demo_without_ssh_agent_uses_the_key_file(
    tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    # A machine with nothing but Python: the only program on PATH is the interpreter.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    result = run_demo(bare_env(tmp_path, str(bin_dir)))
    assert result.returncode == 0, result.stdout + result.stderr
    check_story(result.stdout)
    assert "/home/.ssh/id_ed25519 (no ssh-agent on PATH)" in result.stdout
    check_clean(tmp_path)


def read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)
    lines.put(None)


def read_until(lines: queue.Queue[str | None], marker: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, "the demo ended early:\n" + "".join(seen)
        seen.append(line)
        if marker in line:
            return seen


def test_keep_serves_the_printed_commands_until_sigint(
    tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    env = bare_env(tmp_path, os.environ["PATH"])
    demo = subprocess.Popen(
        [IMGCTL, "demo", "--keep"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reaper.append(demo)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=read_lines, args=(demo.stdout, lines), daemon=True).start()
    output = "".join(read_until(lines, "Ctrl-C stops everything", TIMEOUT))
    check_story(output)
    children = psutil.Process(demo.pid).children(recursive=True)
    names = {" ".join(child.cmdline()) for child in children}
    assert len(children) == 5, names  # two registries, the issuer, the server, ssh-agent
    root = re.search(r"started under (\S+)$", output, re.M)
    assert root
    assert Path(root.group(1)).is_dir()

    # The printed commands work as printed, from a shell that only has imgctl on its PATH.
    commands = re.findall(r"^  (\S.*)$", output, re.M)  # the story is indented by 3
    exports = [c for c in commands if c.startswith(("export ", "unset "))]
    runs = [c for c in commands if c not in exports]
    assert [c.split()[:2] for c in runs] == [
        ["imgctl", "ls"],
        ["imgctl", "digest"],
        ["imgctl", "verify"],
        ["imgctl", "attestations"],
        ["imgctl", "auth-check"],
        ["curl", "-s"],
        ["imgctl", "promote"],
        ["curl", "-s"],
        ["imgctl", "catalog"],
        ["imgctl", "scan"],
    ]
    # The printed admission commands use curl: without it they cannot be checked, and a check
    # that drops out is no check (scripts/test.sh installs curl).
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the demo's admission commands; install Debian's curl")
    script = "\n".join(["set -e", *exports, *(f"echo '@@'; {c}" for c in runs)])
    shell_env = {"PATH": f"{Path(IMGCTL).parent}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    shell = subprocess.run(
        ["bash", "-c", script], env=shell_env, capture_output=True, text=True, timeout=60
    )
    assert shell.returncode == 0, shell.stdout + shell.stderr
    said = dict(zip(runs, shell.stdout.split("@@\n")[1:], strict=True))
    by_name = {c.split()[1]: out for c, out in said.items() if c.startswith("imgctl ")}
    assert by_name["ls"] == "1.0.0\n"
    digest = check_story(output)
    assert by_name["digest"] == f"{digest}\n"
    assert re.fullmatch(
        rf"verified  {DIGEST}  verified with key /\S+/cosign\.pub\n", by_name["verify"]
    )
    assert re.fullmatch(
        r"https://k8s\.io/promo-tools/promotion/v1  \(1 of 1 verified\)\n"
        r"  verified  sha256:[0-9a-f]{64}  verified with key /\S+/cosign\.pub\n",
        by_name["attestations"],
    ), by_name["attestations"]
    assert by_name["auth-check"].startswith(f"authenticated as {USER}@demo.imgctl.local\n")
    assert by_name["promote"].startswith("promoted demo/unvetted:0.1.0: dev -> prod\n")
    assert "/demo/unvetted" in by_name["catalog"]
    assert "/demo/hello" in by_name["catalog"]
    assert re.search(r"^hello .* True +1 +1\.0\.0 ", by_name["scan"], re.M), by_name["scan"]
    admissions = [json.loads(out)["response"] for c, out in said.items() if c.startswith("curl")]
    assert [a["allowed"] for a in admissions] == [False, True]  # before and after promote
    check_web_lines(output)

    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=30) == 130
    stderr = demo.stderr.read() if demo.stderr else ""
    assert f"Stopped everything and removed {root.group(1)}." in stderr
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert not Path(root.group(1)).exists()
    check_clean(tmp_path)


def check_web_lines(output: str) -> None:
    """--keep names the web pages, the login page and a token that opens them, printed once."""
    http = re.search(r"^   server HTTP +(http://127\.0\.0\.1:\d+) ", output, re.M)
    assert http, output
    url = http.group(1)
    assert f"\nThe web pages: {url}/  (releases, audit trail, watches, charts)\n" in output
    assert f"Sign in at {url}/login by pasting this token, {USER}'s OIDC token. " in output
    assert "It is a secret of this demo only (its issuer stops with it)" in output
    tokens = re.findall(r"^   (eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$", output, re.M)
    assert len(tokens) == 1, output
    token = tokens[0]
    assert output.count(token) == 1
    assert output.index(token) > output.index("Everything keeps running.")
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        page = client.get(f"{url}/", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1" in page.text
        # Without the token the page sends a browser to the login page, which is there.
        anonymous = client.get(f"{url}/")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login")
        assert client.get(f"{url}/login").status_code == 200
        wrong = client.get(f"{url}/", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert wrong.status_code == 303


def test_ctrl_c_during_start_up_cleans_up(
    tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    env = bare_env(tmp_path, os.environ["PATH"])
    demo = subprocess.Popen(
        [IMGCTL, "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reaper.append(demo)
    deadline = time.monotonic() + TIMEOUT
    children: list[psutil.Process] = []
    while len(children) < 4:  # the servers are starting, not ready
        assert demo.poll() is None
        assert time.monotonic() < deadline
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(demo.pid).children(recursive=True)
        time.sleep(0.01)
    demo.send_signal(signal.SIGINT)
    stdout, stderr = demo.communicate(timeout=30)
    assert demo.returncode == 130, stdout + stderr
    assert "interrupted; stopping everything" in stderr
    assert "Done in" not in stdout
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    check_clean(tmp_path)


def test_a_failing_step_names_it_and_keeps_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: the dev registry dies at once; the error names the step and its log."""
    real = _setup.Demo.imgctl

    def broken(self: _setup.Demo, name: str, *args: str) -> _supervise.Child:
        if name == "registry-dev":
            code = "import sys; print('no storage for you'); sys.exit(3)"
            return self.spawn(name, [sys.executable, "-c", code], self.base_env())
        return real(self, name, *args)

    monkeypatch.setattr(_setup.Demo, "imgctl", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        _story.run()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "imgctl: error: demo step 1 (start the registries, issuer, ssh-agent and server) " in err
    assert "registry-dev exited with status 3 (no storage for you)" in err
    log = re.search(r"^imgctl: see (\S+registry-dev\.log) ", err, re.M)
    assert log, err
    assert Path(log.group(1)).read_text() == "no storage for you\n"
    # Only the kept logs remain; every child is gone.
    assert [p.name.startswith("imgctl-demo-logs-") for p in tmp_path.iterdir()] == [True]
    assert processes_under(tmp_path) == []


def test_workdir_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = subprocess.run(
        [IMGCTL, "demo", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"imgctl: error: --workdir {tmp_path} is not empty" in result.stderr
    assert (tmp_path / "something").read_text() == "mine"


def test_demo_image_is_deterministic_multi_arch() -> None:
    one = build_image("demo/hello", "1.0.0", "hi")
    two = build_image("demo/hello", "1.0.0", "hi")
    assert one.digest == two.digest
    assert one.platforms == ("linux/amd64", "linux/arm64")
    assert build_image("demo/other", "1.0.0", "bye").digest != one.digest
    assert mt.OCI_INDEX.encode() in one.index.data
    for manifest in one.manifests:
        assert str(manifest.digest).encode() in one.index.data


def test_add_ed25519_identity_to_a_real_agent(tmp_path: Path) -> None:
    """The fallback when ssh-agent exists without ssh-add: the key then signs through it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    socket_path = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", socket_path], stdout=subprocess.DEVNULL)
    try:
        while not os.path.exists(socket_path):
            assert agent.poll() is None
            time.sleep(0.01)
        key = ed25519.Ed25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)

        async def add_then_sign() -> None:
            await _agent.add_ed25519_identity(socket_path, public, seed, "demo key")
            [held] = await agent_keys(socket_path)
            assert held.comment == "demo key"
            signature = await held.sign(b"payload")
            assert verify_ssh_signature(held.public_blob, b"payload", signature)
            with pytest.raises(ValueError, match="32-byte"):
                await _agent.add_ed25519_identity(socket_path, public[:31], seed)

        asyncio.run(add_then_sign())
    finally:
        agent.terminate()
        agent.wait(timeout=10)
