"""README.md's quick start, run as a new user would paste it, and its shown output checked.

The block between ``<!-- quickstart`` and ``<!-- /quickstart -->`` is taken from README.md:
its ``sh`` blocks are run as written, then each ``$ `` command of its ``console`` blocks, whose
output must be the output shown there. All of it runs in one bash process, in an empty
directory, with a bare environment (a temporary HOME, PATH holding imgctl and the system's
tools, a private ssh-agent holding no key): nothing of the developer's machine is used.

One change is made to the text: the fixed ports the README uses (5001, 5002, 5556, 9999,
8080) are replaced, everywhere in the commands and in the shown output, by free ports, so the
test can run beside anything else. Everything else is literal. In the shown output, a digest,
a request id and a duration in ms stand for any value of their kind, and a line ``...``
for any lines; the digest promoted must be the one ``imgctl append`` printed.

Every process the quick start starts is in the process group of its bash, which the test
kills at the end whatever happens; the README's own last command must already have stopped
them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.registry import free_port
from ..support.sshkeys import Agent, require

README = Path(__file__).resolve().parents[2] / "README.md"
PORTS = ("5001", "5002", "5556", "9999", "8080")
DIGEST = "sha256:[0-9a-f]{64}"
_TIME = r"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z"  # re.sub's replacement: escaped
MARK = "@@@ quickstart step {} @@@"
# How long the whole quick start may take before the test gives up on a hang. Not a speed
# claim: it takes about 10 s alone, several times that on a loaded 2-core machine.
TIMEOUT = 300


@dataclass
class Step:
    """A ``$`` command of a console block and the output shown under it."""

    command: str
    expected: list[str]


@dataclass
class QuickStart:
    """The quick start: its sh blocks' script and its console steps, in README order."""

    setup: str
    steps: list[Step]


def quick_start(text: str) -> QuickStart:
    """Find the marked quick start of a README and split it into setup and steps."""
    found = re.search(r"<!-- quickstart\b.*?-->\n(.*?)<!-- /quickstart -->", text, re.S)
    assert found, "README.md has no <!-- quickstart --> ... <!-- /quickstart --> block"
    setup: list[str] = []
    steps: list[Step] = []
    for kind, body in re.findall(r"```(\w+)\n(.*?)```", found.group(1), re.S):
        if kind == "sh":
            assert not steps, "an sh block after a console block would run out of order"
            setup.append(body)
        elif kind == "console":
            steps += _console(body)
        else:
            raise AssertionError(f"the quick start has a {kind} block: only sh and console run")
    assert setup, "the quick start needs an sh block"
    assert steps, "the quick start needs a console block"
    return QuickStart("".join(setup), steps)


def _console(body: str) -> list[Step]:
    steps: list[Step] = []
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        assert line.startswith("$ "), f"console output before any command: {line!r}"
        command = line[2:]
        while command.endswith("\\"):  # a command continued on the next line
            index += 1
            command += "\n" + lines[index]
        index += 1
        expected: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        steps.append(Step(command, expected))
    return steps


def remap(text: str, ports: dict[str, int]) -> str:
    """``text`` with each of the README's fixed ports replaced by its free port."""
    return re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: str(ports[m.group(1)]), text)


def pattern(expected: list[str]) -> re.Pattern[str]:
    """A regex matching output as shown: digests, request ids and ms are any value."""
    parts: list[str] = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        regex = re.escape(line)
        regex = re.sub(r"sha256:[0-9a-f]{64}", DIGEST, regex)
        regex = re.sub(r"sha256:[0-9a-f]{12}\b", "sha256:[0-9a-f]{12}", regex)
        regex = re.sub(r"\b[0-9a-f]{32}\b", "[0-9a-f]{32}", regex)
        regex = re.sub(r"\d{4}\\-\d\d\\-\d\dT\d\d:\d\d:\d\d\\\.\d{6}Z", _TIME, regex)
        regex = re.sub(r"\b\d+\\ ms\b", r"\\d+\\ ms", regex)
        parts.append(regex + r"\n")
    return re.compile("".join(parts))


def script(start: QuickStart, ports: dict[str, int]) -> str:
    """The bash script: the setup (stopping at its first failure), then each marked step."""
    lines = ["set -e", remap(start.setup, ports), "set +e"]
    for number, step in enumerate(start.steps):
        lines += [f"echo '{MARK.format(number)}'", remap(step.command, ports)]
    return "\n".join(lines) + "\n"


def outputs(stdout: str, count: int) -> tuple[str, list[str]]:
    """The setup's output and each step's, split at the marks."""
    pieces = re.split(r"^@@@ quickstart step \d+ @@@\n", stdout, flags=re.M)
    assert len(pieces) == count + 1, f"the quick start stopped early:\n{stdout}"
    return pieces[0], pieces[1:]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    agent = Agent(tmp_path / "agent")
    yield agent
    agent.stop()


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_quick_start(
    text: str, workdir: Path, agent_socket: str
) -> tuple[subprocess.CompletedProcess[str], QuickStart, dict[str, int], bool]:
    """Run the README's quick start; return bash's result and whether its group stopped."""
    for tool in ("ssh-keygen", "tar", "od"):
        require(tool)
    start = quick_start(text)
    ports = {port: free_port() for port in PORTS}
    home, bin_dir, tmp = workdir / "home", workdir / "bin", workdir / "t"
    run_dir = workdir / "quickstart"
    for directory in (home, bin_dir, tmp, run_dir):
        directory.mkdir()
    (bin_dir / "imgctl").symlink_to(IMGCTL)
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LOGNAME": "quickstart",
        "USER": "quickstart",
        "TMPDIR": str(tmp),
        "SSH_AUTH_SOCK": agent_socket,
        "LANG": "C.UTF-8",
    }
    (workdir / "quickstart.sh").write_text(script(start, ports))
    output = workdir / "quickstart.out"
    # A file, not a pipe: a daemon that kept bash's output open must not hold the test up.
    with output.open("w") as sink:
        process = subprocess.Popen(
            ["bash", str(workdir / "quickstart.sh")],
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: all it starts is killed below
        )
    try:
        process.wait(timeout=TIMEOUT)
        # The README's last command stops the daemons; give them their shutdown.
        deadline = time.monotonic() + 60
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = not group_alive(process.pid)
    finally:
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    result = subprocess.CompletedProcess(process.args, process.returncode, output.read_text(), "")
    return result, start, ports, stopped


def test_the_quick_start_runs_as_written(tmp_path: Path, agent: Agent) -> None:
    result, start, ports, stopped = run_quick_start(README.read_text(), tmp_path, agent.socket)
    logs = "".join(
        f"--- {log.name}\n{log.read_text()}"
        for log in sorted((tmp_path / "quickstart").glob("*.log"))
    )
    setup, steps = outputs(result.stdout, len(start.steps))
    assert result.returncode == 0, result.stdout + logs

    # What the README claims, step by step, in the shown output.
    for step, output in zip(start.steps, steps, strict=True):
        expected = remap("\n".join(step.expected), ports).splitlines()
        assert pattern(expected).fullmatch(output), (
            f"$ {step.command}\nshowed:\n{output}\nREADME shows:\n" + "\n".join(expected) + logs
        )
    joined = "\n".join(steps)
    assert "promoted myapp:v1.2.3: dev -> prod" in steps[0]
    assert "unchanged myapp:v1.2.3: dev -> prod" in steps[1]
    assert "unknown destination environment 'staging'" in joined
    assert "\nexit 2\n" in joined
    assert "groups: engineering@example.com" in joined

    # The image the quick start put in dev is the one promoted, digest unchanged.
    appended = re.search(rf"^localhost:{ports['5001']}/myapp@({DIGEST})$", setup, re.M)
    assert appended, setup
    assert f"/myapp:v1.2.3@{appended.group(1)}" in steps[0]
    assert f"localhost:{ports['5002']}/myapp:v1.2.3@{appended.group(1)}" in steps[0]

    # Everything listened on loopback only: what the README says it binds.
    script_text = script(start, ports)
    assert "0.0.0.0" not in script_text
    for port in ("9999", "8080", "5556", "5001", "5002"):
        assert f"127.0.0.1:{ports[port]}" in script_text, port
    assert stopped, "the README's last command left processes running"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_the_quick_start_links_lead_somewhere() -> None:
    text = README.read_text()
    section = text[text.index("## Quick start: the promotion server") :]
    section = section[: section.index("\n## ", 1)]
    links = re.findall(r"\]\((docs/[\w./-]+\.md)(?:#([\w-]+))?\)", section)
    # The issuer's config, imgctl append and the tokens file, at least.
    assert {(path, anchor) for path, anchor in links} >= {
        ("docs/authentication.md", "imgctls-built-in-issuer"),
        ("docs/registry.md", "imgctl-append"),
        ("docs/server.md", "the-tokens-file"),
    }
    for path, anchor in links:
        target = README.parent / path
        assert target.is_file(), path
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            assert anchor in {slug(heading) for heading in headings}, (path, anchor)


def test_the_tokens_file_example_makes_a_file_the_server_takes(tmp_path: Path) -> None:
    # docs/server.md "The tokens file": its sh block, run as written, then a write with its token.
    text = (README.parent / "docs" / "server.md").read_text()
    section = text[text.index("## The tokens file") :]
    block = re.search(r"```sh\n(.*?)```", section[: section.index("\n## ", 1)], re.S)
    assert block, "docs/server.md's tokens file section has no sh block"
    work = tmp_path / "tokens"
    work.mkdir()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    subprocess.run(
        ["bash", "-c", "set -e\n" + block.group(1) + 'printf %s "$token" >token.txt\n'],
        cwd=work,
        env=env,
        check=True,
        timeout=60,
    )
    tokens_file = work / "catalog-tokens.yaml"
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    token = (work / "token.txt").read_text()
    assert re.fullmatch("[0-9a-f]{64}", token)

    image = "docker.io/acme/app@sha256:" + "0" * 64
    with catalog_server(IMGCTL, work, token=None, flags=["--tokens-file", str(tokens_file)]) as url:

        def put(secret: str) -> subprocess.CompletedProcess[str]:
            command = [IMGCTL, "catalog", "put", image, "--name", "docker.io/acme/app"]
            return subprocess.run(
                [*command, "--tag", "v1", "-e", "prod", "--catalog-url", url],
                env={**env, "IMGCTL_CATALOG_TOKEN": secret},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        written = put(token)
        assert written.returncode == 0, written.stderr
        refused = put("0" * 64)
        assert refused.returncode != 0
        assert "a valid bearer token is required" in refused.stderr
    assert "loaded: 1 enabled" in (work / "catalog.log").read_text()
