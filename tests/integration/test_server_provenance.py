"""The policy file's ``provenance`` rule: `imgctl server` checks its sources' attestations.

A real `imgctl server` process (tests/support/deployment.py) with the built-in issuer,
docker-registry as dev and prod. The sources' attestations are real ones, made with
imgctl.trust.attest_image over a SLSA provenance statement signed with a test key, and broken on
purpose by rewriting the registry's bytes: one byte of the DSSE signature changed, or another
digest's ``.att`` image under this digest's tag (issue 19 item 2).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from imgctl.oci import Digest, Reference
from imgctl.remote import ClientOptions, RegistryClient

from ..conftest import PushedImage
from ..support.cosign import tags_of
from ..support.deployment import (
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    promote_request,
    server_env,
    start_identity,
    start_server,
    stop_process,
)
from ..support.registry import Registry
from ..support.skopeo import digest_of
from .test_cip_pipeline import OCI_MANIFEST, SLSA_V1, statement
from .test_cip_signing import Key, make_key
from .test_server_signing import audit_rows, promote_cli


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    root = tmp_path_factory.mktemp("provenance-identity")
    with contextlib.ExitStack() as cleanup:
        yield start_identity(root, {"alice": ("alice@example.com", [ENGINEERING, OPS])}, cleanup)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("provenance-keys")
    return {name: make_key(directory, name) for name in ("builder", "other")}


def pinned(image: PushedImage) -> Reference:
    return Reference.parse(f"{image.ref.rsplit(':', 1)[0]}@{image.digest}")


def repository_of(image: PushedImage) -> str:
    return image.ref.split("/", 1)[1].rsplit(":", 1)[0]


async def attest(image: PushedImage, key: Key) -> None:
    """A build's SLSA provenance of ``image``, signed with ``key``, in its ``.att`` image."""
    from imgctl.trust import attest_image, load_signer

    ref = pinned(image)
    async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
        await attest_image(
            client,
            ref,
            load_signer(str(key.private)),
            statement(ref.name, image.digest),
            predicate_type=SLSA_V1,
        )


async def copy_attestation(
    origin: PushedImage, target: PushedImage, *, flip_signature_byte: bool = False
) -> None:
    """Put ``origin``'s ``.att`` image under ``target``'s ``.att`` tag, maybe one byte changed."""

    def att(image: PushedImage) -> Reference:
        return Reference.parse(
            f"{image.ref.rsplit(':', 1)[0]}:{image.digest.replace(':', '-')}.att"
        )

    source, destination = att(origin), att(target)
    async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
        manifest = json.loads((await client.get_manifest(source)).data)
        blobs: dict[str, bytes] = {}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            digest = Digest.parse(descriptor["digest"])
            blobs[str(digest)] = b"".join(
                [chunk async for chunk in client.iter_blob(source, digest)]
            )
        if flip_signature_byte:
            layer = manifest["layers"][0]
            envelope: dict[str, Any] = json.loads(blobs[layer["digest"]])
            signature = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
            signature[len(signature) // 2] ^= 0x01
            envelope["signatures"][0]["sig"] = base64.b64encode(bytes(signature)).decode()
            data = json.dumps(envelope).encode()
            layer["digest"], layer["size"] = str(Digest.of(data)), len(data)
            blobs[layer["digest"]] = data
        for blob, data in blobs.items():
            await client.push_blob(destination, Digest.parse(blob), data, len(data))
        await client.put_manifest(destination, json.dumps(manifest).encode(), OCI_MANIFEST)


def write_policy(tmp_path: Path, keys: dict[str, Key], required: bool | None) -> Path:
    (tmp_path / "builder.pub").write_bytes(keys["builder"].public.read_bytes())
    policy = tmp_path / "policy.yaml"
    rule = "{keys: [builder.pub]}"
    if required is not None:
        rule = f"{{keys: [builder.pub], required: {str(required).lower()}}}"
    policy.write_text(f"provenance:\n  prod: {rule}\n")
    return policy


def promote_all(
    identity: Identity, address: str, images: dict[str, PushedImage]
) -> dict[str, tuple[grpc.StatusCode, str, str]]:
    token = identity.token("alice")
    answers = {}
    for name, image in images.items():
        request = promote_request(f"{repository_of(image)}:v1")
        status, details, request_id, _ = asyncio.run(
            grpc_call(address, "Promote", request, token=token)
        )
        answers[name] = (status, details, request_id)
    return answers


def test_provenance_is_verified_if_present(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    names = ("valid", "tampered", "elsewhere", "foreign", "bare")
    images = {name: push_image(dev, platforms=None) for name in names}

    async def make() -> None:
        await attest(images["valid"], keys["builder"])
        await attest(images["tampered"], keys["builder"])
        await copy_attestation(images["tampered"], images["tampered"], flip_signature_byte=True)
        await copy_attestation(images["valid"], images["elsewhere"])
        await attest(images["foreign"], keys["other"])

    asyncio.run(make())
    policy = write_policy(tmp_path, keys, None)  # required: false by default
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": url}
    process, address, _, log = start_server(tmp_path, env, "--policy-file", str(policy))
    try:
        answers = promote_all(identity, address, images)
        cli = promote_cli(identity, address, f"{repository_of(images['tampered'])}:v1")
    finally:
        stop_process(process)

    for name in ("valid", "bare"):
        status, details, _ = answers[name]
        assert status == grpc.StatusCode.OK, (name, details)
        image = images[name]
        assert digest_of(f"{prod.host}/release/{repository_of(image)}:v1") == image.digest
    prefix = "'prod' takes only images whose provenance verifies"
    for name, reason in (
        ("tampered", f"attestation 1 ({SLSA_V1}): "),
        ("elsewhere", f"attestation 1 ({SLSA_V1}): statement is for {images['valid'].digest}"),
        ("foreign", f"attestation 1 ({SLSA_V1}): "),
    ):
        status, details, _ = answers[name]
        source = f"{dev.host}/{repository_of(images[name])}:v1@{images[name].digest}"
        assert status == grpc.StatusCode.PERMISSION_DENIED, (name, details)
        assert details.startswith(
            f"{prefix}: {source}: 1 of its 1 attestation(s) did not verify ({reason}"
        ), details
        assert tags_of(prod.host, f"release/{repository_of(images[name])}") == []
    for name in ("tampered", "foreign"):
        assert "the envelope's signature does not verify with" in answers[name][1], name
    assert cli.returncode == 4, cli.stdout + cli.stderr
    assert prefix in cli.stderr

    rows = {r.request_id: r for r in audit_rows(url) if r.action == "promote"}
    for name in ("tampered", "elsewhere", "foreign"):
        row = rows[answers[name][2]]
        assert (row.result, row.error_code) == ("denied", "PERMISSION_DENIED"), name
        assert "did not verify" in (row.error or "")
    assert rows[answers["bare"][2]].result == "succeeded"
    assert rows[answers["valid"][2]].result == "succeeded"

    text = log.read_text()
    bare_source = f"{dev.host}/{repository_of(images['bare'])}:v1@{images['bare'].digest}"
    warnings = [line for line in text.splitlines() if "without verified provenance" in line]
    assert len(warnings) == 1, text
    assert bare_source in warnings[0]
    assert "no attestation found" in warnings[0]
    assert "Traceback" not in text


def test_required_provenance_refuses_sources_without_one(
    identity: Identity,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    keys: dict[str, Key],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    images = {name: push_image(dev, platforms=None) for name in ("valid", "bare")}
    asyncio.run(attest(images["valid"], keys["builder"]))
    policy = write_policy(tmp_path, keys, True)
    url = f"sqlite:///{tmp_path}/audit.db"
    env = server_env(identity.idp, dev, prod) | {"IMGCTL_DATABASE_URL": url}
    process, address, _, log = start_server(tmp_path, env, "--policy-file", str(policy))
    try:
        answers = promote_all(identity, address, images)
    finally:
        stop_process(process)
    status, details, _ = answers["valid"]
    assert status == grpc.StatusCode.OK, details
    status, details, request_id = answers["bare"]
    bare = images["bare"]
    source = f"{dev.host}/{repository_of(bare)}:v1@{bare.digest}"
    assert status == grpc.StatusCode.PERMISSION_DENIED, details
    assert details.startswith(
        f"'prod' takes only images whose provenance verifies: {source}: it has no attestation "
        "(the server's provenance rule for prod)"
    ), details
    assert tags_of(prod.host, f"release/{repository_of(bare)}") == []
    rows = {r.request_id: r for r in audit_rows(url) if r.action == "promote"}
    assert rows[request_id].result == "denied"
    assert "without verified provenance" not in log.read_text()
