"""`imgctl server --sign-key` signs what it promotes; the policy file can require signed sources.

A real `imgctl server` process (tests/support/deployment.py) with the built-in issuer and an
ssh-agent, docker-registry as dev and prod (prod behind the fault proxy where a push must fail),
the audit table on SQLite and PostgreSQL (``db_url``), and the test-side cosign reader
(tests/support/cosign.py) as the referee of what lands in prod (issue 18 items 5 and 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from imgctl.store import AuditRecord, AuditStore

from ..conftest import IMGCTL, PushedImage
from ..support.cosign import signature_layers, signature_manifest, tags_of
from ..support.deployment import (
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    launch_server,
    promote_request,
    server_env,
    start_identity,
    start_server,
    stop_process,
)
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of
from .test_cip_signing import Key, make_key


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    root = tmp_path_factory.mktemp("signing-identity")
    with contextlib.ExitStack() as cleanup:
        yield start_identity(root, {"alice": ("alice@example.com", [ENGINEERING, OPS])}, cleanup)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("server-keys")
    return {name: make_key(directory, name) for name in ("release", "other")}


def key_id(key: Key) -> str:
    der = key.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def audit_rows(url: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await AuditStore.open(url) as store:
            return await store.recent()

    return asyncio.run(read())


def promote_cli(
    identity: Identity, address: str, ref: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "promote", ref, "-d", "prod", "--server", address, "-u", "alice", *extra],
        capture_output=True,
        text=True,
        env=identity.env(),
        timeout=120,
    )


def test_the_server_signs_each_promotion_and_the_audit_row_says_so(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    db_url: str,
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    release = keys["release"]
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_DATABASE_URL": db_url,
        "IMGCTL_SIGN_KEY": str(release.private),  # the variable; the flag is tested below
    }
    process, address, _, log = start_server(tmp_path, env)
    try:
        token = identity.token("alice")
        status, details, request_id, answer = asyncio.run(
            grpc_call(address, "Promote", promote_request(f"{repository}:v1"), token=token)
        )
        assert status == grpc.StatusCode.OK, details
        assert answer.HasField("signed")
        assert answer.signed
        assert answer.signature_key == key_id(release)
        assert answer.signature_error == ""
        [layer] = signature_layers(prod.host, f"release/{repository}", image.digest)
        assert layer.signed_by(release.key)
        assert layer.docker_reference == f"{prod.host}/release/{repository}"
        assert layer.manifest_digest == image.digest
        sig_manifest = signature_manifest(prod.host, f"release/{repository}", image.digest)

        # Again: unchanged, signed (found signed by this key), nothing written.
        again = promote_cli(identity, address, f"{repository}:v1")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"unchanged {repository}:v1")
        assert f"  signed with key {key_id(release)[:12]}\n" in again.stdout
        assert signature_manifest(prod.host, f"release/{repository}", image.digest) == sig_manifest
    finally:
        stop_process(process)
    rows = [r for r in audit_rows(db_url) if r.action == "promote"]
    assert len(rows) == 2
    first = next(r for r in rows if r.request_id == request_id)
    assert (first.result, first.signed, first.signature_key) == ("succeeded", True, key_id(release))
    assert first.signature_error is None
    assert all(r.signed is True for r in rows)
    assert "Traceback" not in log.read_text()


def test_a_server_without_a_key_records_nothing_about_signatures(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": url}
    process, address, _, _ = start_server(tmp_path, env)
    try:
        result = promote_cli(identity, address, f"{repository}:v1", "-o", "json")
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stderr
    assert '"signed"' not in result.stdout  # unset: this server does not sign
    assert tags_of(prod.host, f"release/{repository}") == ["v1"]
    [row] = [r for r in audit_rows(url) if r.action == "promote"]
    assert (row.signed, row.signature_key, row.signature_error) == (None, None, None)


def test_a_signing_failure_keeps_the_copy_and_says_unsigned(
    identity: Identity,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    proxy = proxy_for(prod)
    proxy.fail(500, 10_000, method="PUT", path=r"/manifests/sha256-[0-9a-f]{64}\.sig$")
    image = push_image(dev, platforms=None)
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_REGISTRY_PROD": f"{proxy.host}/release",
        "IMGCTL_DATABASE_URL": url,
    }
    process, address, _, _ = start_server(tmp_path, env, "--sign-key", str(keys["release"].private))
    try:
        result = promote_cli(identity, address, f"{repository}:v1")
    finally:
        stop_process(process)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"promoted {repository}:v1: dev -> prod")
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "imgctl: error: promoted, but the server could not sign it (not signed: "
    )
    assert line.endswith("; promote again to sign it")
    # The copy stands; no half signature.
    assert digest_of(f"{prod.host}/release/{repository}:v1") == image.digest
    assert signature_manifest(prod.host, f"release/{repository}", image.digest) is None
    [row] = [r for r in audit_rows(url) if r.action == "promote"]
    assert (row.result, row.signed) == ("succeeded", False)
    assert row.signature_key == key_id(keys["release"])
    assert (row.signature_error or "").startswith("not signed: ")
    assert row.error is None


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        pytest.param("{tmp}/nowhere.key", "no such key file", id="missing"),
        pytest.param("{tmp}/garbage.key", "", id="not-a-key"),
    ],
)
def test_a_bad_sign_key_stops_the_start(
    identity: Identity,
    registries: Callable[..., Registry],
    tmp_path: Path,
    variable: str,
    problem: str,
) -> None:
    (tmp_path / "garbage.key").write_text("-----BEGIN NOTHING-----\n")
    env = server_env(identity.idp, registries(), registries()) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path}/audit.db",
        "IMGCTL_SIGN_KEY": variable.format(tmp=tmp_path),
    }
    process, _, _, log = launch_server(tmp_path, env)
    try:
        assert process.wait(timeout=60) == 2  # a configuration mistake (issue 22 item 5)
    finally:
        stop_process(process)
    lines = [line for line in log.read_text().splitlines() if "imgctl: error:" in line]
    assert len(lines) == 1, log.read_text()
    assert lines[0].startswith("imgctl: error: --sign-key (IMGCTL_SIGN_KEY): ")
    assert problem in lines[0]
    assert "Traceback" not in log.read_text()


# ----------------------------------------------------------------------------- require_signature


def test_the_policy_file_requires_signed_sources(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, RegistryClient
    from imgctl.trust import load_signer, sign_image

    dev, prod = registries(), registries()
    images = {name: push_image(dev, platforms=None) for name in ("good", "forged", "bare")}

    async def sign() -> None:
        async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
            for name, key in (("good", "release"), ("forged", "other")):
                name_only = images[name].ref.rsplit(":", 1)[0]
                ref = Reference.parse(f"{name_only}@{images[name].digest}")
                await sign_image(client, ref, load_signer(str(keys[key].private)))

    asyncio.run(sign())
    policy = tmp_path / "policy.yaml"
    (tmp_path / "release.pub").write_bytes(keys["release"].public.read_bytes())
    policy.write_text("require_signature:\n  prod:\n    keys: [release.pub]\n")
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": url}
    process, address, _, _ = start_server(tmp_path, env, "--policy-file", str(policy))
    token = identity.token("alice")
    answers = {}
    try:
        for name, image in images.items():
            repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
            answers[name] = (
                repository,
                asyncio.run(
                    grpc_call(address, "Promote", promote_request(f"{repository}:v1"), token=token)
                ),
            )
        bare_repository = answers["bare"][0]
        cli = promote_cli(identity, address, f"{bare_repository}:v1")
    finally:
        stop_process(process)

    repository, (status, details, _, _) = answers["good"]
    assert status == grpc.StatusCode.OK, details
    assert digest_of(f"{prod.host}/release/{repository}:v1") == images["good"].digest
    for name, reason in (
        ("forged", "none of its 1 signature(s) verified (signature 1: signed by another key)"),
        ("bare", "it has no signature"),
    ):
        repository, (status, details, _request_id, _) = answers[name]
        source = f"{dev.host}/{repository}:v1@{images[name].digest}"
        assert status == grpc.StatusCode.PERMISSION_DENIED, details
        assert details.startswith(f"'prod' takes only signed images: {source}: {reason}"), details
        assert tags_of(prod.host, f"release/{repository}") == []  # nothing copied
    assert cli.returncode == 4, cli.stderr
    assert "'prod' takes only signed images" in cli.stderr
    assert "it has no signature" in cli.stderr
    rows = {r.request_id: r for r in audit_rows(url) if r.action == "promote"}
    _, (_, _, forged_request, _) = answers["forged"]
    assert rows[forged_request].result == "denied"
    assert rows[forged_request].error_code == "PERMISSION_DENIED"
    assert "signed by another key" in (rows[forged_request].error or "")


def test_a_policy_file_naming_a_bad_key_stops_the_start(
    identity: Identity, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("require_signature:\n  prod:\n    keys: [missing.pub]\n")
    env = server_env(identity.idp, registries(), registries()) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path}/audit.db"
    }
    process, _, _, log = launch_server(tmp_path, env, "--policy-file", str(policy))
    try:
        assert process.wait(timeout=60) == 2  # a configuration mistake (issue 22 item 5)
    finally:
        stop_process(process)
    text = log.read_text()
    assert f"imgctl: error: policy file {policy}: require_signature.prod: " in text
    assert "missing.pub" in text
    assert "Traceback" not in text


def test_a_server_promotion_brings_the_source_signature_and_appends_its_own(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    # The build signed the image in dev; promotion must carry that signature to prod (referrers
    # travel with the image) and add the server's own to the same .sig manifest, not replace it.
    dev, prod = registries(), registries()
    image = push_image(dev, platforms=None)
    repository = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    build, release = keys["other"], keys["release"]
    signed = subprocess.run(
        [IMGCTL, "sign", image.ref, "--key", str(build.private)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert signed.returncode == 0, signed.stderr
    [dev_layer] = signature_layers(
        dev.host, image.ref.split("/", 1)[1].rsplit(":", 1)[0], image.digest
    )
    env = server_env(identity.idp, dev, prod) | {
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path}/audit.db",
        "IMGCTL_SIGN_KEY": str(release.private),
    }
    process, address, _, _ = start_server(tmp_path, env)
    try:
        result = promote_cli(identity, address, f"{repository}:v1")
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stdout + result.stderr
    layers = signature_layers(prod.host, f"release/{repository}", image.digest)
    assert len(layers) == 2, layers
    first, second = layers
    # The build's signature came first, byte for byte.
    assert (first.raw, first.signature) == (dev_layer.raw, dev_layer.signature)
    assert first.signed_by(build.key)
    assert not first.signed_by(release.key)
    assert second.signed_by(release.key)
    assert second.docker_reference == f"{prod.host}/release/{repository}"
    assert {first.manifest_digest, second.manifest_digest} == {image.digest}
    # Beside the signatures, only the server's promotion attestation (issue 19).
    assert sorted(tags_of(prod.host, f"release/{repository}")) == sorted(
        ["v1", image.digest.replace(":", "-") + ".sig", image.digest.replace(":", "-") + ".att"]
    )
