"""The copy engine against real registries; skopeo checks every copied digest."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from imgctl.authn import Credential, StaticKeychain
from imgctl.errors import DigestMismatchError, NotFoundError, UsageError
from imgctl.oci import Digest, Reference, parse_manifest
from imgctl.remote import ClientOptions, CopyOptions, RegistryClient, copy_image, copy_images

from ..conftest import FAST_RETRIES, PASSWORD, USER, PushedImage
from ..support.layout import build_image, make_layer
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw, push_layout, skopeo
from ..support.tokenserver import TokenServer


def ref(value: str) -> Reference:
    return Reference.parse(value)


def assert_same_image(source: str, destination: str, **skopeo_args: object) -> None:
    """The destination's index and every child manifest match the source, per skopeo."""
    raw = inspect_raw(destination, **skopeo_args)  # type: ignore[arg-type]
    assert raw == inspect_raw(source)
    parsed = parse_manifest(raw)
    children = getattr(parsed, "manifests", ())
    repo = destination.rsplit(":", 1)[0]
    for child in children:
        assert digest_of(f"{repo}@{child.digest}", **skopeo_args) == str(child.digest)  # type: ignore[arg-type]


async def test_copy_multi_arch_preserves_every_digest(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=3, layer_size=200_000)
    destination = f"{registry2.host}/{repo('dst')}:v1"
    result = await copy_image(client, ref(image.ref), ref(destination))
    assert result.status == "copied"
    assert str(result.digest) == image.digest
    assert digest_of(destination) == image.digest
    assert_same_image(image.ref, destination)
    # 2 platforms x (3 layers + config), index + 2 children.
    assert result.blobs_copied == 8
    assert result.manifests_pushed == 3
    assert result.bytes_copied == image.built.total_bytes + sum(
        registry.blob_path(d).stat().st_size
        for d in image.built.blob_digests
        if registry.blob_path(d).stat().st_size < 10_000
    )
    for digest in image.built.blob_digests:
        assert registry2.blob_path(digest).read_bytes() == registry.blob_path(digest).read_bytes()


async def test_destination_with_tag_and_digest_gets_the_tag_pinned_to_that_digest(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1000, tag="v7")
    name = repo("pinned")
    source = f"{image.ref}@{image.digest}"
    destination = f"{registry2.host}/{name}:v7@{image.digest}"
    result = await copy_image(client, ref(source), ref(destination))
    assert result.status == "copied"
    assert registry2.has_tag(name, "v7")
    assert digest_of(f"{registry2.host}/{name}:v7") == image.digest
    again = await copy_image(client, ref(source), ref(destination))
    assert again.status == "unchanged"
    # A digest that is not the source's is refused before anything is written.
    other = "sha256:" + "0" * 64
    with pytest.raises(UsageError, match="pins digest"):
        await copy_image(client, ref(source), ref(f"{registry2.host}/{name}:v8@{other}"))
    assert not registry2.has_tag(name, "v8")


async def test_copy_single_manifest_by_digest_and_default_tag(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, platforms=None, layers=2, layer_size=10_000)
    source = ref(image.ref).with_digest(Digest.parse(image.digest))
    dst_repo = f"{registry2.host}/{repo('bydigest')}"
    result = await copy_image(client, source, ref(dst_repo))
    # No tag on either side: the image lands by digest only.
    assert str(result.destination) == f"{dst_repo}@{image.digest}"
    assert digest_of(f"{dst_repo}@{image.digest}") == image.digest
    # A destination without a tag keeps the source's tag.
    tagged = await copy_image(client, ref(image.ref), ref(dst_repo))
    assert tagged.destination.tag == "v1"
    assert digest_of(f"{dst_repo}:v1") == image.digest
    assert tagged.blobs_copied == 0


async def test_copy_docker_schema2_manifest_list(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=5000)
    docker_ref = f"{registry.host}/{repo('docker')}:v2s2"
    skopeo(
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{image.ref}",
        f"docker://{docker_ref}",
    )
    raw = inspect_raw(docker_ref)
    assert (
        json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    destination = f"{registry2.host}/{repo('docker')}:v2s2"
    result = await copy_image(client, ref(docker_ref), ref(destination))
    assert result.media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert_same_image(docker_ref, destination)


async def test_same_registry_copy_mounts_and_moves_no_blob_bytes(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=3, layer_size=300_000)
    proxy = proxy_for(registry)
    source = image.ref.replace(registry.host, proxy.host)
    destination = f"{proxy.host}/{repo('promoted')}:v1"
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, ref(source), ref(destination))
        assert client.stats.bytes_uploaded < 10_000  # three small manifests only
    assert result.blobs_mounted == 8
    assert result.blobs_copied == 0
    assert result.bytes_copied == 0
    assert proxy.blob_bytes_moved() < 10_000
    blob_gets = [p for m, p, s in proxy.log if m == "GET" and "/blobs/" in p]
    assert blob_gets == []
    assert digest_of(destination.replace(proxy.host, registry.host)) == image.digest


async def test_second_copy_is_a_no_op(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=2, layer_size=50_000)
    proxy = proxy_for(registry2)
    destination = f"{proxy.host}/{repo('again')}:v1"
    async with RegistryClient(options=FAST_RETRIES) as client:
        first = await copy_image(client, ref(image.ref), ref(destination))
    assert first.status == "copied"
    proxy.log.clear()
    async with RegistryClient(options=FAST_RETRIES) as client:
        second = await copy_image(client, ref(image.ref), ref(destination))
        assert client.stats.bytes_uploaded == 0
    assert second.status == "unchanged"
    # Only the ping and one HEAD of the destination tag reach the destination.
    assert [m for m, p, s in proxy.log] == ["GET", "HEAD"]


async def test_partial_destination_only_missing_parts_are_sent(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=2, layer_size=40_000)
    index = parse_manifest(inspect_raw(image.ref))
    first_child = index.manifests[0].digest  # type: ignore[union-attr]
    dst_repo = f"{registry2.host}/{repo('partial')}"
    # One platform is already there (by digest, untagged), as after an interrupted copy.
    pre = await copy_image(
        client, ref(image.ref).with_digest(first_child), ref(dst_repo).with_digest(first_child)
    )
    assert pre.blobs_copied == 3
    result = await copy_image(client, ref(image.ref), ref(f"{dst_repo}:v1"))
    assert result.blobs_copied == 3  # the other platform's layers and config
    assert result.manifests_pushed == 2  # the other platform's manifest and the index
    assert_same_image(image.ref, f"{dst_repo}:v1")


async def test_missing_source_fails_clearly_and_writes_nothing(
    client: RegistryClient, registry: Registry, registry2: Registry, repo: Callable[[str], str]
) -> None:
    dst_name = repo("nothing")
    [result] = await copy_images(
        client,
        [(ref(f"{registry.host}/{repo('missing')}:v9"), ref(f"{registry2.host}/{dst_name}:v9"))],
    )
    assert result.status == "failed"
    assert isinstance(result.error, NotFoundError)
    assert "v9" in str(result.error)
    assert not (registry2.storage / "docker/registry/v2/repositories" / dst_name).exists()


async def test_corrupt_source_blob_is_refused_and_no_tag_written(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, platforms=None, layers=1, layer_size=100_000)
    proxy = proxy_for(registry)
    proxy.corrupt_blob_gets = True
    dst_name = repo("corrupt")
    async with RegistryClient(options=FAST_RETRIES) as client:
        with pytest.raises(DigestMismatchError) as caught:
            await copy_image(
                client,
                ref(image.ref.replace(registry.host, proxy.host)),
                ref(f"{registry2.host}/{dst_name}:v1"),
            )
    assert "refusing to store it" in str(caught.value)
    assert not registry2.has_tag(dst_name, "v1")
    for digest in image.built.blob_digests:
        if registry.blob_path(digest).stat().st_size > 50_000:
            assert not registry2.has_blob(digest)


async def test_copy_survives_429_and_5xx(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=2, layer_size=100_000)
    proxy = proxy_for(registry2)
    proxy.fail(429, 3, method="HEAD", headers={"Retry-After": "0.2"})
    proxy.fail(500, 2, method="PUT", path="/blobs/uploads/")
    proxy.fail(503, 2, method="PUT", path="/manifests/")
    proxy.fail(502, 1, method="POST")
    destination = f"{proxy.host}/{repo('faulty')}:v1"
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, ref(image.ref), ref(destination))
        assert client.limiter.pauses >= 1
    assert result.status == "copied"
    injected = [s for m, p, s in proxy.log if s >= 429]
    assert sorted(injected) == [429, 429, 429, 500, 500, 502, 503, 503]
    assert_same_image(image.ref, destination.replace(proxy.host, registry2.host))


async def test_many_images_share_blobs_and_connections(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    tmp_path: Path,
    repo: Callable[[str], str],
) -> None:
    shared = [make_layer(random.Random(7), 60_000, "shared.bin")]
    sources = []
    for i in range(4):
        built = build_image(
            tmp_path / f"img{i}", tag="v1", layers=2, layer_size=20_000, shared_layers=shared
        )
        source = f"{registry.host}/{repo('many')}:v1"
        push_layout(built.oci_ref, source)
        sources.append(source)
    # Each image to its own repository, and all four into one repository under four tags.
    pairs = [(ref(s), ref(f"{registry2.host}/{repo('manydst')}:v1")) for s in sources]
    together = f"{registry2.host}/{repo('together')}"
    pairs += [(ref(s), ref(f"{together}:t{i}")) for i, s in enumerate(sources)]
    results = await copy_images(client, pairs, CopyOptions(image_concurrency=3, blob_concurrency=4))
    assert [r.status for r in results] == ["copied"] * 8
    for (src, dst), result in zip(pairs, results, strict=True):
        assert digest_of(str(dst)) == str(result.digest) == digest_of(str(src))
    # 4 images x 2 platforms x (2 layers + config) = 24 blob uses; in the shared repository
    # the shared layer is stored once, so at most 24 - 7 blobs crossed or were mounted there.
    into_together = results[4:]
    moved = sum(r.blobs_copied + r.blobs_mounted for r in into_together)
    assert moved <= 24 - 7
    # Nothing crossed the wire twice for one repository: bytes equal the sum of distinct blobs.
    assert client.stats.bytes_uploaded > 0


async def test_chunked_copy(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, platforms=None, layers=1, layer_size=2_500_000)
    destination = f"{registry2.host}/{repo('chunks')}:v1"
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(
            client, ref(image.ref), ref(destination), CopyOptions(chunk_size=1 << 20)
        )
    assert result.blobs_copied == 2
    assert digest_of(destination) == image.digest


async def test_destination_pinned_to_another_digest_is_refused(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, platforms=None, layers=1, layer_size=1000)
    wrong = Digest.of(b"something else")
    with pytest.raises(UsageError) as caught:
        await copy_image(client, ref(image.ref), ref(f"{registry2.host}/{repo('pinned')}@{wrong}"))
    assert str(wrong) in str(caught.value)


async def test_copy_onto_itself_is_refused(
    client: RegistryClient, registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(registry, platforms=None, layers=1, layer_size=1000)
    with pytest.raises(UsageError):
        await copy_image(client, ref(image.ref), ref(image.ref))


async def test_copy_between_authenticated_registries(
    htpasswd_registry: Registry,
    token_registry: Registry,
    token_server: TokenServer,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    creds = f"{USER}:{PASSWORD}"
    image = push_image(htpasswd_registry, creds=creds, layers=2, layer_size=30_000)
    destination = f"{token_registry.host}/{repo('authed')}:v1"
    keychain = StaticKeychain(Credential(USER, PASSWORD))
    async with RegistryClient(keychain, ClientOptions()) as client:
        result = await copy_image(client, ref(image.ref), ref(destination))
    assert result.status == "copied"
    assert inspect_raw(destination, creds=creds) == inspect_raw(image.ref, creds=creds)
    assert digest_of(destination, creds=creds) == image.digest


async def test_self_mount_replaces_head_once_the_registry_shows_support(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    first = push_image(registry, platforms=None, layers=1, layer_size=20_000)
    second = push_image(registry, layers=3, layer_size=20_000)
    proxy = proxy_for(registry2)
    dst_name = repo("selfmount")
    async with RegistryClient(options=FAST_RETRIES) as client:
        # One at a time, so the probe after the first upload decides for all later blobs.
        options = CopyOptions(image_concurrency=1, blob_concurrency=1)
        await copy_image(client, ref(first.ref), ref(f"{proxy.host}/{dst_name}:a"), options)
        proxy.log.clear()
        result = await copy_image(
            client, ref(second.ref), ref(f"{proxy.host}/{dst_name}:b"), options
        )
    assert result.blobs_copied == 8
    blob_heads = [p for m, p, s in proxy.log if m == "HEAD" and "/blobs/" in p]
    self_mounts = [
        p for m, p, s in proxy.log if m == "POST" and f"from={dst_name}" in p.replace("%2F", "/")
    ]
    assert blob_heads == []
    assert len(self_mounts) == 8
    assert digest_of(f"{registry2.host}/{dst_name}:b") == second.digest


async def test_registry_without_mount_support_still_skips_present_blobs(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=2, layer_size=30_000)
    index = parse_manifest(inspect_raw(image.ref))
    child = index.manifests[0].digest  # type: ignore[union-attr]
    proxy = proxy_for(registry2)
    proxy.ignore_mounts = True
    dst = f"{proxy.host}/{repo('nomount')}"
    async with RegistryClient(options=FAST_RETRIES) as client:
        await copy_image(client, ref(image.ref).with_digest(child), ref(dst).with_digest(child))
    # A new client learns nothing from the first run; the registry never answers 201.
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, ref(image.ref), ref(f"{dst}:v1"))
    assert result.blobs_copied == 3
    assert result.blobs_skipped == 0  # the present platform was skipped as a whole
    assert result.manifests_pushed == 2
    assert digest_of(f"{dst.replace(proxy.host, registry2.host)}:v1") == image.digest


async def test_blob_upload_dropped_mid_stream_is_retried_whole(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, platforms=None, layers=2, layer_size=500_000)
    proxy = proxy_for(registry2)
    proxy.fail(0, 2, method="PUT", path="/blobs/uploads/")
    destination = f"{proxy.host}/{repo('dropped')}:v1"
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, ref(image.ref), ref(destination))
    assert result.status == "copied"
    assert [s for m, p, s in proxy.log if m == "PUT" and "/blobs/" in p].count(0) == 2
    assert digest_of(destination.replace(proxy.host, registry2.host)) == image.digest
