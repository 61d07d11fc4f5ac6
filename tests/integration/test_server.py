"""End to end: registries (dev, prod), the issuer, ssh-agent, `imgctl server` and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import grpc
import pytest

from imgctl.store import AuditStore
from imgctl.v1 import imgctl_pb2 as pb
from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

from ..conftest import IMGCTL, PushedImage
from ..support.deployment import (
    AUDIENCE,
    ENGINEERING,
    OPS,
    SECRET,
    server_env,
    start_server,
    stop_process,
)
from ..support.httpd import CheckedHTTPServer
from ..support.idp import Idp, start_idp
from ..support.moto import MotoServer
from ..support.postgres import scratch_database
from ..support.registry import Registry, free_port
from ..support.skopeo import digest_of
from ..support.sshkeys import Agent, Key, keygen


@dataclass
class Slack:
    """A webhook receiver: answers 500 to the first message, then records every body."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    server: CheckedHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret-path"

    def start(self) -> Slack:
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                slack.hits += 1
                if slack.hits == 1:
                    self.send_response(500)
                    self.end_headers()
                    return
                slack.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; fail the test if the handler raised."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server.check()


@dataclass
class Deployment:
    dev: Registry
    prod: Registry
    idp: Idp
    agent: Agent
    server: str
    http: str
    process: subprocess.Popen[bytes]
    database: str
    home: Path
    slack: Slack
    log: Path
    aws: dict[str, str]

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.aws["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=self.aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.aws["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        return (
            base
            | {
                "HOME": str(self.home),
                "SSH_AUTH_SOCK": self.agent.socket,
                "IMGCTL_SERVER": self.server,
                "IMGCTL_CLIENT_SECRET": SECRET,
                "USER": "nobody",
            }
            | extra
        )

    def imgctl(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IMGCTL, *args, "-u", user],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )

    def token(self, user: str) -> str:
        result = subprocess.run(
            [IMGCTL, "token", "-u", user, "--dex-url", self.idp.url, "--audience", AUDIENCE],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def audit_count(self, **filters: str) -> int:
        async def count() -> int:
            async with await AuditStore.open(self.database) as store:
                return await store.count(**filters)

        return asyncio.run(count())


@pytest.fixture(scope="module")
def deployment(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with contextlib.ExitStack() as cleanup:
        yield from _deploy(registries, tmp_path_factory, cleanup)


def _deploy(
    registries: Callable[..., Registry],
    tmp_path_factory: pytest.TempPathFactory,
    cleanup: contextlib.ExitStack,
) -> Iterator[Deployment]:
    """Start everything; every process is registered for stopping as soon as it runs."""
    root = tmp_path_factory.mktemp("deployment")
    dev, prod = registries(), registries()
    keys: dict[str, Key] = {
        u: keygen(root / "keys", "ed25519", name=u) for u in ("alice", "bob", "carol")
    }
    idp = start_idp(
        IMGCTL,
        root / "idp",
        {
            "alice": {
                "keys": [keys["alice"].line],
                "email": "alice@example.com",
                "groups": [ENGINEERING, OPS],
            },
            "bob": {
                "keys": [keys["bob"].line],
                "email": "bob@example.com",
                "groups": [ENGINEERING],
            },
            "carol": {
                "keys": [keys["carol"].line],
                "email": "carol@example.com",
                "groups": ["visitors"],
            },
        },
        audiences=[AUDIENCE],
        secret=SECRET,
    )
    cleanup.callback(idp.stop)
    agent = Agent(root / "agent")
    cleanup.callback(agent.stop)
    agent.add(*keys.values())
    slack = Slack().start()
    cleanup.callback(slack.stop)
    policy = root / "policy.yaml"
    policy.write_text(f"destinations:\n  prod: [{OPS}]\n")
    moto = MotoServer(root / "moto.log").start()
    cleanup.callback(moto.stop)
    aws_config = root / "aws-config"
    aws_config.write_text("[default]\ns3 =\n    addressing_style = path\n")
    aws = {
        "AWS_ACCESS_KEY_ID": "AKIASERVERTEST",
        "AWS_SECRET_ACCESS_KEY": "server-test-aws-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    database = f"sqlite:///{root / 'state' / 'imgctl.db'}"
    env = (
        server_env(idp, dev, prod)
        | {
            "IMGCTL_DATABASE_URL": database,
            "IMGCTL_SLACK_WEBHOOK_URL": slack.url,
            "IMGCTL_SPA_DEV": "dev-01",
            "IMGCTL_SPA_PROD": "prod-01",
        }
        | aws
    )
    process, grpc_address, http_address, log = start_server(root, env, "--policy-file", str(policy))
    cleanup.callback(stop_process, process)
    home = root / "client-home"
    home.mkdir()
    yield Deployment(
        dev,
        prod,
        idp,
        agent,
        grpc_address,
        http_address,
        process,
        database,
        home,
        slack,
        log,
        aws,
    )


def promote_json(deployment: Deployment, *args: str, user: str = "alice") -> dict[str, Any]:
    result = deployment.imgctl("promote", *args, "-o", "json", user=user)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_promote_by_tag_then_again_then_by_digest(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("web")
    image = push_image(deployment.dev, repository=name, tag="v1.2.3", layers=2)
    first = promote_json(deployment, f"{name}:v1.2.3", "--destination", "prod")
    destination = f"{deployment.prod.host}/release/{name}:v1.2.3"
    assert first["digest"] == image.digest
    assert first["destinationRef"] == f"{destination}@{image.digest}"
    assert first["unchanged"] is False
    assert first["bytesCopied"] > 0
    assert first["promotedBy"] == "alice@example.com"
    assert digest_of(destination) == image.digest  # skopeo, the independent witness
    assert deployment.audit_count(request_id=first["requestId"]) == 1

    again = promote_json(deployment, f"{name}:v1.2.3", "-d", "prod")
    assert again["unchanged"] is True
    assert again["bytesCopied"] == 0
    assert again["digest"] == image.digest

    by_digest = promote_json(deployment, "--ref", f"{name}@{image.digest}", "-d", "prod")
    assert by_digest["digest"] == image.digest
    assert deployment.audit_count(request_id=by_digest["requestId"]) == 1

    # Slack heard about it (after one 500 and a retry); the URL's secret path never got logged.
    deadline = time.monotonic() + 10
    while not any(first["requestId"] in json.dumps(m) for m in deployment.slack.messages):
        assert time.monotonic() < deadline, "no Slack message"
        time.sleep(0.1)
    assert "secret-path" not in deployment.log.read_text()


def test_human_output_and_auth_check(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("api")
    push_image(deployment.dev, repository=name, tag="v1", layers=1)
    text = deployment.imgctl("promote", f"{name}:v1", "-d", "prod")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"promoted {name}:v1: dev -> prod\n")
    check = deployment.imgctl("auth-check", user="bob")
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines() == [
        "authenticated as bob@example.com",
        f"groups: {ENGINEERING}",
        "may promote to: dev",
    ]


def test_policy_and_group_refusals(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("denied")
    push_image(deployment.dev, repository=name, tag="v1", layers=1)
    bob = deployment.imgctl("promote", f"{name}:v1", "-d", "prod", user="bob")
    assert bob.returncode == 4, bob.stderr
    assert "PERMISSION_DENIED" in bob.stderr
    assert OPS in bob.stderr
    carol = deployment.imgctl("promote", f"{name}:v1", "-d", "prod", user="carol")
    assert carol.returncode == 4, carol.stderr
    assert not deployment.prod.has_tag(f"release/{name}", "v1")
    unknown = deployment.imgctl("promote", f"{name}:v1", "-d", "staging")
    assert unknown.returncode == 2
    assert "unknown destination environment 'staging'" in unknown.stderr


def test_a_source_that_does_not_exist_exits_5(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    # README "Exit codes": 5, the image does not exist at the source (NOT_FOUND on the wire).
    name = repo("absent")
    push_image(deployment.dev, repository=name, tag="v1", layers=1)
    for ref in (f"{name}:v2", f"{repo('never-pushed')}:v1"):
        result = deployment.imgctl("promote", ref, "-d", "prod")
        assert result.returncode == 5, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("imgctl: error: ")
        assert lines[0].endswith("(NOT_FOUND)")
        assert "not found" in lines[0]
    assert not deployment.prod.has_tag(f"release/{name}", "v2")


async def call(
    deployment: Deployment,
    method: str,
    request: Any,
    *,
    token: str | None = None,
) -> tuple[grpc.StatusCode, str, str]:
    """One raw gRPC call with our own request id: (status, details, request id)."""
    request_id = uuid.uuid4().hex
    metadata = [("x-request-id", request_id)]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    async with grpc.aio.insecure_channel(deployment.server) as channel:
        stub = pb_grpc.ImgCtlStub(channel)
        try:
            await getattr(stub, method)(request, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or "", request_id
    return grpc.StatusCode.OK, "", request_id


@pytest.mark.parametrize(
    ("case", "request_fields", "code", "detail"),
    [
        ("no token", {"destination": "prod"}, grpc.StatusCode.UNAUTHENTICATED, "no token"),
        ("bad token", {"destination": "prod"}, grpc.StatusCode.UNAUTHENTICATED, "malformed"),
        ("no destination", {}, grpc.StatusCode.INVALID_ARGUMENT, "destination is required"),
        (
            "unknown source",
            {"source": "qa", "destination": "prod"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "'qa'",
        ),
        (
            "same env",
            {"source": "prod", "destination": "prod"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "both",
        ),
        (
            "no tag",
            {"destination": "prod", "ref": "app"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "no tag",
        ),
        (
            "missing image",
            {"destination": "prod", "ref": "nothing/here:v1"},
            grpc.StatusCode.NOT_FOUND,
            "not found",
        ),
    ],
)
def test_each_refusal_has_its_status_and_one_audit_row(
    deployment: Deployment,
    case: str,
    request_fields: dict[str, str],
    code: grpc.StatusCode,
    detail: str,
) -> None:
    token = (
        None
        if case == "no token"
        else ("not.a.jwt" if case == "bad token" else deployment.token("alice"))
    )
    request = pb.PromoteRequest(**({"ref": "some/app:v1"} | request_fields))
    status, details, request_id = asyncio.run(call(deployment, "Promote", request, token=token))
    assert status == code, details
    assert detail in details
    assert deployment.audit_count(request_id=request_id) == 1


def test_server_info_needs_no_token(deployment: Deployment) -> None:
    async def info() -> pb.ServerInfoResponse:
        async with grpc.aio.insecure_channel(deployment.server) as channel:
            return await pb_grpc.ImgCtlStub(channel).ServerInfo(pb.ServerInfoRequest())

    answer = asyncio.run(info())
    assert answer.issuer_url == deployment.idp.url
    assert answer.audience == AUDIENCE
    assert [(e.name, e.registry, list(e.allowed_groups)) for e in answer.environments] == [
        ("dev", deployment.dev.host, []),
        ("prod", f"{deployment.prod.host}/release", [OPS]),
    ]


def test_fifty_concurrent_promotions_fifty_rows(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("busy")
    image = push_image(deployment.dev, repository=name, tag="v5", layers=2)
    token = deployment.token("alice")
    request = pb.PromoteRequest(ref=f"{name}:v5", destination="prod")

    async def fifty() -> list[tuple[grpc.StatusCode, str, str]]:
        return list(
            await asyncio.gather(
                *(call(deployment, "Promote", request, token=token) for _ in range(50))
            )
        )

    outcomes = asyncio.run(fifty())
    assert [status for status, _, _ in outcomes] == [grpc.StatusCode.OK] * 50
    assert sum(deployment.audit_count(request_id=rid) for _, _, rid in outcomes) == 50
    assert digest_of(f"{deployment.prod.host}/release/{name}:v5") == image.digest


def test_metrics_and_health(deployment: Deployment) -> None:
    assert deployment.imgctl("auth-check").returncode == 0
    with urllib.request.urlopen(f"http://{deployment.http}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'imgctl_requests_total{action="auth_check",result="succeeded"}' in text
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import grpc,sys\n"
            "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g\n"
            f"c=grpc.insecure_channel('{deployment.server}')\n"
            "print(g.HealthStub(c).Check(h.HealthCheckRequest(service='imgctl.v1.ImgCtl')).status)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "1", result.stderr  # SERVING


def test_reflection_lists_the_services(deployment: Deployment) -> None:
    # What grpcurl does first: ask the server which services it has, and their schema.
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(deployment.server) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        described = database.FindFileContainingSymbol("imgctl.v1.ImgCtl")
    assert {"imgctl.v1.ImgCtl", "grpc.health.v1.Health"} <= services
    assert described.name == "imgctl/v1/imgctl.proto"


def test_spa_promotion_through_the_server(deployment: Deployment) -> None:
    s3 = deployment.s3()
    for bucket in ("dashboard-dev-01", "dashboard-prod-01"):
        s3.create_bucket(Bucket=bucket)
    files = {"index.html": "text/html", "assets/app.js": "application/javascript"}
    for key, content_type in files.items():
        s3.put_object(
            Bucket="dashboard-dev-01",
            Key=f"v0.1.42/{key}",
            Body=f"<{key}>".encode(),
            ContentType=content_type,
            Metadata={"build": "42"},
        )
    first = promote_json(deployment, "spa:dashboard:v0.1.42", "-d", "prod")
    assert first["kind"] == "spa"
    assert first["sourceRef"] == "s3://dashboard-dev-01/v0.1.42/"
    assert first["destinationRef"] == "s3://dashboard-prod-01/v0.1.42/"
    assert first["objectsCopied"] == 2
    copied = s3.head_object(Bucket="dashboard-prod-01", Key="v0.1.42/assets/app.js")
    assert copied["ContentType"] == "application/javascript"
    assert copied["Metadata"]["build"] == "42"
    again = promote_json(deployment, "spa:dashboard:v0.1.42", "-d", "prod")
    assert again["unchanged"] is True
    assert again["objectsSkipped"] == 2
    bad = deployment.imgctl("promote", "spa:Dash/board:v1", "-d", "prod")
    assert bad.returncode == 2, bad.stderr
    assert "INVALID_ARGUMENT" in bad.stderr
    assert deployment.audit_count(request_id=first["requestId"]) == 1


# ----------------------------------------------------------------- shutdown, TLS, PostgreSQL


def token_for(deployment: Deployment) -> str:
    return deployment.token("alice")


def test_graceful_shutdown_finishes_the_running_promotion(
    deployment: Deployment,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], Any],
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:

    name = repo("slow")
    image = push_image(deployment.dev, repository=name, tag="v1", layers=1, layer_size=4_000_000)
    slow_dev = proxy_for(deployment.dev)
    slow_dev.throttle_bytes_per_second = 2_000_000  # about 2 s of copying per platform layer
    prod = registries()
    env = server_env(deployment.idp, deployment.dev, prod) | {
        "IMGCTL_REGISTRY_DEV": slow_dev.host,
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    process, address, _, log = start_server(tmp_path, env, "--grace", "30")
    try:
        _promote_while_stopping(deployment, process, address, log, name, image, prod)
    finally:
        stop_process(process)


def _promote_while_stopping(
    deployment: Deployment,
    process: subprocess.Popen[bytes],
    address: str,
    log: Path,
    name: str,
    image: PushedImage,
    prod: Registry,
) -> None:
    import signal

    token = token_for(deployment)

    async def promote_then_stop() -> tuple[grpc.StatusCode, str]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ImgCtlStub(channel)
            call = stub.Promote(
                pb.PromoteRequest(ref=f"{name}:v1", destination="prod"),
                metadata=[("authorization", f"Bearer {token}")],
            )
            await asyncio.sleep(0.5)  # the copy is under way
            process.send_signal(signal.SIGTERM)
            try:
                answer = await call
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
            return grpc.StatusCode.OK, answer.digest

    status, detail = asyncio.run(promote_then_stop())
    assert status == grpc.StatusCode.OK, detail
    assert detail == image.digest
    assert process.wait(timeout=30) == 0
    assert digest_of(f"{prod.host}/release/{name}:v1") == image.digest
    assert "shutting down" in log.read_text()


def test_grpc_over_tls(deployment: Deployment, tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    env = server_env(deployment.idp, deployment.dev, deployment.prod) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    process, address, _, log = start_server(
        tmp_path, env, "--tls-cert", str(pem), "--tls-key", str(pem)
    )
    try:
        client = deployment.env(IMGCTL_SERVER=address)
        ok = subprocess.run(
            [IMGCTL, "auth-check", "-u", "alice", "--tls", "--ca-cert", str(ca_file)],
            capture_output=True,
            text=True,
            env=client,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        via_env = subprocess.run(
            [IMGCTL, "auth-check", "-u", "alice", "--ca-cert", str(ca_file)],
            capture_output=True,
            text=True,
            env=client | {"IMGCTL_TLS": "true"},
            timeout=60,
        )
        assert via_env.returncode == 0, via_env.stderr
        plain = subprocess.run(
            [IMGCTL, "auth-check", "-u", "alice"],
            capture_output=True,
            text=True,
            env=client,
            timeout=60,
        )
        assert plain.returncode == 6, plain.stderr
        assert "cannot reach the imgctl server" in plain.stderr
        assert "WITHOUT TLS" not in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_server_whose_registry_refuses_names_it_not_itself(
    deployment: Deployment,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    # Issue 22: the server was reached; its destination registry was not. The client must say
    # which registry (and environment) the server could not reach, not "cannot reach the imgctl
    # server", and exit 6 (UNAVAILABLE: trying again later can work).
    port = free_port()
    env = server_env(deployment.idp, deployment.dev, deployment.prod) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "IMGCTL_REGISTRY_PROD": f"127.0.0.1:{port}/release",
    }
    process, address, _, _ = start_server(tmp_path, env)
    try:
        name = repo("down")
        push_image(deployment.dev, repository=name, tag="v1", layers=1)
        result = subprocess.run(
            [IMGCTL, "promote", f"{name}:v1", "-d", "prod", "-u", "alice"],
            capture_output=True,
            text=True,
            env=deployment.env(IMGCTL_SERVER=address),
            timeout=120,
        )
        assert result.returncode == 6, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "cannot reach the imgctl server" not in lines[0]
        assert (
            f"the server could not reach registry 127.0.0.1:{port} (environment prod)" in (lines[0])
        )
        assert "refused the connection" in lines[0]
        # Refused at once: the server's registry client did not go through its retries.
        assert "tried" not in lines[0]
    finally:
        process.terminate()
        process.wait(timeout=30)
    # A server that cannot be reached at all is still told apart.
    result = subprocess.run(
        [IMGCTL, "promote", "x:v1", "-d", "prod", "-u", "alice"],
        capture_output=True,
        text=True,
        env=deployment.env(IMGCTL_SERVER=address),
        timeout=120,
    )
    assert result.returncode == 6, result.stderr
    assert f"cannot reach the imgctl server at {address}" in result.stderr


def test_grpc_with_client_certificates(deployment: Deployment, tmp_path: Path) -> None:
    import trustme

    server_ca, client_ca = trustme.CA(), trustme.CA()
    pem = tmp_path / "server.pem"
    server_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_file, client_ca_file = tmp_path / "ca.pem", tmp_path / "client-ca.pem"
    server_ca.cert_pem.write_to_path(str(ca_file))
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    client = client_ca.issue_cert("alice@example.com")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    env = server_env(deployment.idp, deployment.dev, deployment.prod) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    flags = ["--tls-cert", str(pem), "--tls-key", str(pem), "--client-ca", str(client_ca_file)]
    process, address, _, _ = start_server(tmp_path, env, *flags)
    try:
        base = [IMGCTL, "auth-check", "-u", "alice", "--tls", "--ca-cert", str(ca_file)]
        client_env = deployment.env(IMGCTL_SERVER=address)
        refused = subprocess.run(base, capture_output=True, text=True, env=client_env, timeout=60)
        assert refused.returncode == 6, refused.stderr
        ok = subprocess.run(
            [*base, "--client-cert", str(cert), "--client-key", str(key)],
            capture_output=True,
            text=True,
            env=client_env,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        assert "authenticated as alice@example.com" in ok.stdout
    finally:
        stop_process(process)
    without_tls = subprocess.run(
        [IMGCTL, "server", "--bind-address", "127.0.0.1:1", "--client-ca", str(client_ca_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert without_tls.returncode == 2
    assert "--client-ca needs --tls-cert" in without_tls.stderr


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database("postgresql", tmp_path) as url:
        yield url


def test_audit_rows_in_postgresql_under_concurrency(
    deployment: Deployment,
    postgres_url: str,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    name = repo("pg")
    push_image(deployment.dev, repository=name, tag="v1", layers=1)
    env = server_env(deployment.idp, deployment.dev, deployment.prod) | {
        "IMGCTL_DATABASE_URL": postgres_url,
    }
    process, address, _, _ = start_server(tmp_path, env)
    try:
        pg = Deployment(**{**deployment.__dict__, "server": address, "database": postgres_url})
        token = token_for(deployment)
        request = pb.PromoteRequest(ref=f"{name}:v1", destination="prod")
        denied = pb.PromoteRequest(ref=f"{name}:v1", destination="nowhere")

        async def many() -> list[tuple[grpc.StatusCode, str, str]]:
            calls = [call(pg, "Promote", request, token=token) for _ in range(50)]
            calls += [call(pg, "Promote", denied, token=token) for _ in range(5)]
            return list(await asyncio.gather(*calls))

        outcomes = asyncio.run(many())
        codes = [code for code, _, _ in outcomes]
        assert codes == [grpc.StatusCode.OK] * 50 + [grpc.StatusCode.INVALID_ARGUMENT] * 5
        assert pg.audit_count(result="succeeded") == 50
        assert pg.audit_count(result="invalid") == 5
        assert sum(pg.audit_count(request_id=rid) for _, _, rid in outcomes) == 55
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_call_cut_off_by_its_deadline_is_still_audited(
    deployment: Deployment,
    proxy_for: Callable[[Registry], Any],
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    name = repo("deadline")
    push_image(deployment.dev, repository=name, tag="v1", layers=1, layer_size=3_000_000)
    slow_dev = proxy_for(deployment.dev)
    slow_dev.throttle_bytes_per_second = 1_000_000
    env = server_env(deployment.idp, deployment.dev, deployment.prod) | {
        "IMGCTL_REGISTRY_DEV": slow_dev.host,
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    process, address, _, _ = start_server(tmp_path, env)
    try:
        cut = Deployment(
            **{**deployment.__dict__, "server": address, "database": env["IMGCTL_DATABASE_URL"]}
        )
        token = token_for(deployment)

        async def short() -> tuple[grpc.StatusCode, str]:
            request_id = uuid.uuid4().hex
            async with grpc.aio.insecure_channel(address) as channel:
                try:
                    await pb_grpc.ImgCtlStub(channel).Promote(
                        pb.PromoteRequest(ref=f"{name}:v1", destination="prod"),
                        metadata=[
                            ("authorization", f"Bearer {token}"),
                            ("x-request-id", request_id),
                        ],
                        timeout=0.5,
                    )
                except grpc.aio.AioRpcError as error:
                    return error.code(), request_id
            return grpc.StatusCode.OK, request_id

        status, request_id = asyncio.run(short())
        assert status == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        while cut.audit_count(request_id=request_id) == 0:
            assert time.monotonic() < deadline, "the cut-off call left no audit row"
            time.sleep(0.1)
        assert cut.audit_count(request_id=request_id, error_code="CANCELLED") == 1
        assert not deployment.prod.has_tag(f"release/{name}", "v1")  # nothing half-done visible
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_promotions_reach_the_catalog_and_admission(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    import httpx

    name = repo("admit")
    image = push_image(deployment.dev, repository=name, tag="v3", layers=1)
    promote_json(deployment, f"{name}:v3", "-d", "prod")
    base = f"http://{deployment.http}"
    listed = httpx.get(f"{base}/images", params={"environment": "prod", "digest": image.digest})
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["name"] == f"{deployment.prod.host}/release/{name}"
    assert entry["tags"] == ["v3"]
    assert entry["promoted_by"] == "alice@example.com"

    def admit(images: list[str]) -> dict[str, Any]:
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0a1b2c3d",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "deployer"},
                "object": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": f"c{i}", "image": ref} for i, ref in enumerate(images)
                                ]
                            }
                        }
                    },
                },
            },
        }
        answer = httpx.post(f"{base}/admission/prod", json=review)
        assert answer.status_code == 200, answer.text
        response: dict[str, Any] = answer.json()["response"]
        assert response["uid"] == "0a1b2c3d"
        return response

    promoted = f"{deployment.prod.host}/release/{name}"
    assert admit([f"{promoted}@{image.digest}", f"{promoted}:v3"])["allowed"] is True
    refused = admit([f"{promoted}:v3", f"{deployment.dev.host}/{name}:v3"])
    assert refused["allowed"] is False
    assert f"{deployment.dev.host}/{name}:v3" in refused["status"]["message"]
    assert f"{promoted}:v3" not in refused["status"]["message"].replace(
        f"{deployment.dev.host}/{name}:v3", ""
    )


def test_machine_output_of_promote_auth_check_and_the_catalog(
    deployment: Deployment, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    # Numbers as numbers (int64 too), expiresAt in RFC 3339, camelCase; -o yaml the same.
    from datetime import UTC, datetime

    import yaml

    from ..support.machine import RFC3339, check_document, shape, yaml_and_json

    name = repo("machine")
    push_image(deployment.dev, repository=name, tag="v1", layers=1)
    first = deployment.imgctl("promote", f"{name}:v1", "-d", "prod", "-o", "json")
    assert first.returncode == 0, first.stderr
    promoted = json.loads(first.stdout)
    counts = ["bytesCopied", "durationMs", "blobsCopied", "blobsMounted", "blobsSkipped"]
    check_document(promoted, ints=counts)
    assert promoted["bytesCopied"] > 0
    again = deployment.imgctl("promote", f"{name}:v1", "-d", "prod", "-o", "yaml")
    assert again.returncode == 0, again.stderr
    repeated = yaml.safe_load(again.stdout)
    assert repeated["unchanged"] is True
    assert repeated["bytesCopied"] == 0
    assert shape(repeated) == shape(promoted)

    checked, checked_yaml = yaml_and_json(
        lambda out: deployment.imgctl("auth-check", "-o", out, user="bob")
    )
    assert checked == checked_yaml
    check_document(checked, times=["expiresAt"])
    assert checked["email"] == "bob@example.com"
    assert datetime.fromisoformat(checked["expiresAt"]) > datetime.now(UTC)

    def catalog_ls(out: str) -> subprocess.CompletedProcess[str]:
        image = f"{deployment.prod.host}/release/{name}"
        url = f"http://{deployment.http}"
        return subprocess.run(
            [IMGCTL, "catalog", "ls", "--catalog-url", url, "--name", image, "-o", out],
            capture_output=True,
            text=True,
            env=deployment.env(),
            timeout=60,
        )

    listed, listed_yaml = yaml_and_json(catalog_ls)
    assert listed == listed_yaml
    # The catalog's objects keep imagelist's names (docs/architecture.md): snake_case times.
    [entry] = listed
    assert RFC3339.match(entry["created_at"])
    assert RFC3339.match(entry["updated_at"])
