"""``imgctl -v``: an HTTP trace of every registry request on stderr, with no secret in it.

A real copy between two repositories of a token-authenticated docker-registry (Basic auth to
the token server, Bearer tokens to the registry), given the password with
--registry-password, and a listing given a bearer token with --registry-token: the trace shows
each request and answer, never the password, the Basic credentials or any token, and stdout is
what it is without -v.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from base64 import b64encode
from collections.abc import Callable

from ..conftest import IMGCTL, PASSWORD, USER, PushedImage
from ..support.registry import Registry
from ..support.tokenserver import TokenServer

_CREDENTIALS = ["--registry-username", USER, "--registry-password", PASSWORD]


def _imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, timeout=120)


def _trace(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("imgctl: http: ")]


def _assert_no_secret(stderr: str, *secrets: str) -> None:
    basic = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, basic, *secrets):
        assert secret not in stderr
    # The token server's tokens are JWTs: none may show, whole or in part.
    assert re.search(r"eyJ[A-Za-z0-9_-]{10,}", stderr) is None, stderr
    for line in stderr.splitlines():
        if line.strip().lower().startswith(("authorization:", "cookie:", "set-cookie:")):
            value = line.split(":", 1)[1].strip()
            assert value in ("Basic <redacted>", "Bearer <redacted>", "<redacted>"), line


def test_copy_with_v_traces_each_request_without_secrets(
    token_registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(token_registry, creds=f"{USER}:{PASSWORD}")
    host = token_registry.host
    traced_to, plain_to = repo("traced"), repo("plain")

    traced = _imgctl("-v", "copy", image.ref, f"{host}/{traced_to}:v1", *_CREDENTIALS)
    plain = _imgctl("copy", image.ref, f"{host}/{plain_to}:v1", *_CREDENTIALS)

    assert traced.returncode == 0, traced.stderr
    assert plain.returncode == 0, plain.stderr
    # stdout is the same report, the trace is on stderr only.
    assert traced.stdout.replace(traced_to, plain_to) == plain.stdout
    assert "imgctl: http:" not in traced.stdout
    assert _trace(plain.stderr) == []
    trace = "\n".join(_trace(traced.stderr))
    # The ping, its challenge, the token request (Basic) and the registry API (Bearer).
    assert re.search(rf"--> #\d+ GET http://{re.escape(host)}/v2/$", trace, re.M), trace
    assert re.search(rf"<-- #\d+ 401 GET http://{re.escape(host)}/v2/ \(\d+\.\d ms\)", trace)
    assert re.search(r"<-- #\d+ 200 GET http://\S+\?\S*scope=repository", trace), trace
    manifest_put = rf"<-- #\d+ 201 PUT http://{re.escape(host)}/v2/{traced_to}/manifests/v1 "
    assert re.search(manifest_put, trace), trace
    assert "authorization: basic <redacted>" in traced.stderr.lower()
    assert "authorization: bearer <redacted>" in traced.stderr.lower()
    assert "docker-content-digest: sha256:" in traced.stderr.lower()  # answers' headers too
    _assert_no_secret(traced.stderr)


def test_v_on_the_command_traces_a_given_bearer_token_redacted(
    token_registry: Registry,
    token_server: TokenServer,
    push_image: Callable[..., PushedImage],
) -> None:
    image = push_image(token_registry, creds=f"{USER}:{PASSWORD}")
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    request = urllib.request.Request(
        f"{token_server.realm}?service=imgctl-test-registry&scope=repository:{repository}:pull",
        headers={"Authorization": "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = str(json.load(response)["token"])
    listing = f"{token_registry.host}/{repository}"

    traced = _imgctl("ls", listing, "-o", "json", "--registry-token", token, "-v")
    plain = _imgctl("ls", listing, "-o", "json", "--registry-token", token)

    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert json.loads(traced.stdout)["tags"] == ["v1"]
    trace = "\n".join(_trace(traced.stderr))
    assert re.search(rf"<-- #\d+ 200 GET http://\S+/v2/{repository}/tags/list", trace), trace
    assert "authorization: bearer <redacted>" in traced.stderr.lower()
    _assert_no_secret(traced.stderr, token)
