"""The imgctl command line, run as a subprocess the way users and scripts run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..conftest import IMGCTL, PushedImage
from ..support.proxy import FaultProxy
from ..support.registry import Registry, free_port
from ..support.skopeo import digest_of, inspect_raw


def imgctl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, input=input, timeout=300)


def test_help_is_fast_to_load_and_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgctl", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    for command in ("copy", "digest", "manifest", "ls"):
        assert command in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    # Start-up stays lean: no HTTP stack and no asyncio until a command needs them.
    assert "httpx" not in imported
    assert "asyncio" not in imported
    for package in ("imgctl.remote", "imgctl.authn", "imgctl.registryd"):
        assert package not in imported


def test_version() -> None:
    result = imgctl("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("imgctl ")


def test_copy_text_and_json_output(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=10_000)
    destination = f"{registry2.host}/{repo('cli')}"
    first = imgctl("copy", image.ref, destination)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"copied    {image.ref} -> {destination}:v1 {image.digest}")
    assert "4 blobs copied" in first.stdout
    again = imgctl("copy", image.ref, destination, "-o", "json")
    assert again.returncode == 0
    [summary] = json.loads(again.stdout)
    assert summary["status"] == "unchanged"
    assert summary["digest"] == image.digest
    assert summary["destination"] == f"{destination}:v1"
    assert digest_of(f"{destination}:v1") == image.digest


def test_copy_from_file_many_pairs(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    images = [push_image(registry, layers=1, layer_size=5_000) for _ in range(3)]
    lines = ["# promote three images", ""]
    destinations = []
    for image in images:
        destination = f"{registry2.host}/{repo('listed')}:v1"
        destinations.append(destination)
        lines.append(f"{image.ref}   {destination}   # trailing comment")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    result = imgctl("copy", "--from-file", str(pairs), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in json.loads(result.stdout)] == ["copied"] * 3
    for image, destination in zip(images, destinations, strict=True):
        assert digest_of(destination) == image.digest
    from_stdin = imgctl("copy", "--from-file", "-", "-o", "json", input=pairs.read_text())
    assert [r["status"] for r in json.loads(from_stdin.stdout)] == ["unchanged"] * 3


def test_copy_from_file_reports_the_bad_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a/b:1 c/d:1\n\nonly-one-field\n")
    result = imgctl("copy", "--from-file", str(pairs))
    assert result.returncode == 2  # a usage error (README "Exit codes")
    assert result.stderr.strip() == (
        f"imgctl: error: {pairs}:3: expected 'SRC DST', got 1 field(s): 'only-one-field'"
    )
    pairs.write_text("a/b:1 C/D/Bad:1\n")
    result = imgctl("copy", "--from-file", str(pairs))
    assert result.returncode == 2
    assert f"{pairs}:1: invalid reference 'C/D/Bad:1': repository 'D/Bad' must be lowercase" in (
        result.stderr
    )


def test_copy_failure_is_one_line_and_exit_1(
    registry: Registry, registry2: Registry, repo: Callable[[str], str]
) -> None:
    result = imgctl("copy", f"{registry.host}/{repo('gone')}:v1", f"{registry2.host}/x:v1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"imgctl: error: manifest {registry.host}/")
    assert "not found (MANIFEST_UNKNOWN); list the tags with: imgctl ls" in lines[0]
    assert result.stdout == ""


def test_a_missing_manifest_is_the_same_error_in_every_command(
    registry: Registry, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    # digest and verify ask with HEAD (no error body), copy and manifest with GET: the user must
    # get the same line from each, naming the tag asked for, with the hint, never a bare
    # "not found". A reference without a tag says that 'latest' was asked for.
    name = f"{registry.host}/{repo('missing')}"
    push_image(registry, repository=name.split("/", 1)[1], tag="v1", layers=1)
    for reference, shown, latest in (
        (f"{name}:v9", f"{name}:v9", False),
        (name, f"{name}:latest", True),
    ):
        for command in (
            ["digest", reference],
            ["manifest", reference],
            ["copy", reference, f"{registry.host}/x:v1"],
        ):
            result = imgctl(*command)
            assert result.returncode == 1, (command, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (command, result.stderr)
            assert lines[0].startswith(f"imgctl: error: manifest {shown} not found ("), lines[0]
            line = lines[0]
            assert line.endswith(f"list the tags with: imgctl ls {name}"), line
            assert ("no tag was given, so imgctl asked for 'latest'" in line) is latest, line


def test_copy_to_a_refused_port_fails_at_once_naming_the_host(
    registry: Registry, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    # Issue 22: nothing listens there, so no retries (no "retrying" lines, no backoff) and the
    # error names the host that refused.
    image = push_image(registry, repository=repo("refused"), tag="v1", layers=1)
    port = free_port()
    result = imgctl("copy", image.ref, f"127.0.0.1:{port}/x:v1")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port} refused the connection" in lines[0]
    assert "retrying" not in result.stderr


def test_copy_to_a_host_that_does_not_resolve_fails_at_once(
    registry: Registry, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    # A mistyped registry name: DNS answers that no such name exists (RFC 6761 reserves .invalid
    # for exactly that), and asking again gets the same answer, so no retries (it took 6 tries
    # and 6 s before).
    image = push_image(registry, repository=repo("unknown-host"), tag="v1", layers=1)
    result = imgctl("copy", image.ref, "no-such-registry.invalid/x:v1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "imgctl: error: cannot resolve no-such-registry.invalid: Name or service not known"
        " (https://no-such-registry.invalid); check the registry's host name: this machine's DNS"
        " has no address for it"
    ]


@pytest.fixture
def dropping_listener() -> Iterator[tuple[str, list[int]]]:
    """A port that accepts every connection and closes it unanswered; (host, accepted count)."""
    accepted: list[int] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        server.close()


def test_transient_failures_say_retrying_on_stderr_only(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    dropping_listener: tuple[str, list[int]],
) -> None:
    # A connection closed without an answer is transient: retried, and the user sees each
    # retry on stderr while the backoff runs; stdout (-o json) carries no such line.
    host, accepted = dropping_listener
    image = push_image(registry, repository=repo("dropped"), tag="v1", layers=1)
    result = imgctl("copy", "--retries", "2", "-o", "json", image.ref, f"{host}/x:v1")
    assert result.returncode == 1, result.stderr
    assert "retrying" not in result.stdout
    retrying = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert len(retrying) == 2, result.stderr
    assert "retrying 1/2" in retrying[0]
    assert host in retrying[0]
    assert "retrying 2/2" in retrying[1]
    # The failure itself is the JSON document's (stdout), after the last try.
    [failed] = json.loads(result.stdout)
    assert failed["status"] == "failed"
    assert "tried 3 times" in failed["error"]
    # The ping over plain HTTP, then over https (a TLS port may answer plain HTTP by closing).
    assert len(accepted) >= 3


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("Registry.io/Repo:tag", "repository 'Repo' must be lowercase"),
        ("example.com/app:-bad", "tag '-bad' is invalid"),
        ("example.com/app@sha256:1234", "digest sha256 needs 64 lowercase hex characters"),
        ("https://example.com/app", "has a URL scheme"),
    ],
)
def test_bad_reference_names_the_part(argument: str, message: str) -> None:
    result = imgctl("digest", argument)
    assert result.returncode == 2
    assert result.stderr.startswith("imgctl: error: invalid reference")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_username_without_password_is_refused() -> None:
    result = imgctl("digest", "127.0.0.1:1/x:y", "--registry-username", "bob")
    assert result.returncode == 2
    assert "--registry-username and --registry-password must be given together" in result.stderr


def test_digest_manifest_and_ls(
    registry: Registry, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("inspect")
    image = push_image(registry, repository=name, tag="v1", layers=1, layer_size=1000)
    push_image(registry, repository=name, tag="v2", layers=1, layer_size=1000)
    digest = imgctl("digest", image.ref)
    assert digest.returncode == 0
    assert digest.stdout.strip() == image.digest
    raw = subprocess.run([IMGCTL, "manifest", image.ref], capture_output=True, timeout=60)
    assert raw.returncode == 0
    assert raw.stdout == inspect_raw(image.ref)
    tags = imgctl("ls", f"{registry.host}/{name}")
    assert sorted(tags.stdout.split()) == ["v1", "v2"]
    full = imgctl("ls", f"{registry.host}/{name}", "--full-ref")
    assert sorted(full.stdout.split()) == [
        f"{registry.host}/{name}:v1",
        f"{registry.host}/{name}:v2",
    ]
    as_json = json.loads(imgctl("ls", f"{registry.host}/{name}", "-o", "json").stdout)
    assert as_json["name"] == f"{registry.host}/{name}"
    assert sorted(as_json["tags"]) == ["v1", "v2"]
    refused = imgctl("ls", image.ref)
    assert refused.returncode == 2  # a usage error (README "Exit codes")
    assert "names a tag or digest where a repository was expected" in refused.stderr


def test_interrupted_copy_resumes_without_resending(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=3, layer_size=1_000_000)
    proxy = proxy_for(registry)
    proxy.throttle_bytes_per_second = 2_000_000
    dst_name = repo("resumed")
    destination = f"{registry2.host}/{dst_name}:v1"
    slow_source = image.ref.replace(registry.host, proxy.host)
    process = subprocess.Popen(
        [IMGCTL, "copy", "--blob-jobs", "1", "-o", "json", slow_source, destination],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    layers = [d for d in image.built.blob_digests if registry.blob_path(d).stat().st_size > 500_000]
    deadline = time.monotonic() + 60
    while sum(registry2.has_blob(d) for d in layers) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "the copy finished before it could be interrupted"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    landed = [d for d in layers if registry2.has_blob(d)]
    assert 2 <= len(landed) < len(layers)
    # Killed mid-copy: no tag points at the incomplete image.
    assert not registry2.has_tag(dst_name, "v1")

    resumed = imgctl("copy", image.ref, destination, "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    [summary] = json.loads(resumed.stdout)
    assert summary["status"] == "copied"
    assert summary["blobsSkipped"] >= len(landed)
    assert summary["blobsCopied"] == 8 - summary["blobsSkipped"]
    assert digest_of(destination) == image.digest


def test_progress_bar_on_a_terminal(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=2, layer_size=4_000_000)
    destination = f"{registry2.host}/{repo('tty')}"
    # script(1) gives the command a pseudo-terminal, as a user's shell would.
    result = subprocess.run(
        ["script", "-qec", f"{IMGCTL} copy {image.ref} {destination}", "/dev/null"],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0
    output = result.stdout.decode(errors="replace")
    assert "images," in output
    assert "MiB streamed" in output
    assert f"copied    {image.ref} -> {destination}:v1" in output
    assert digest_of(f"{destination}:v1") == image.digest
