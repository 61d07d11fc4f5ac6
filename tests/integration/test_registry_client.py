"""The registry client against real docker-registry instances (and skopeo as a witness)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest

from imgctl.authn import Credential, StaticKeychain
from imgctl.errors import (
    AuthenticationError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TransportError,
)
from imgctl.oci import Digest, Reference, mediatypes
from imgctl.remote import ClientOptions, RegistryClient, RegistryTLS, TLSConfig
from imgctl.remote._http import proxy_routes

from ..conftest import FAST_RETRIES, PASSWORD, USER, PushedImage, Tls
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw
from ..support.tokenserver import TokenServer


def ref(value: str) -> Reference:
    return Reference.parse(value)


async def put_blob(client: RegistryClient, target: Reference, data: bytes) -> Digest:
    digest = Digest.of(data)
    await client.push_blob(target, digest, data, len(data))
    return digest


async def put_small_image(client: RegistryClient, target: Reference, *, nonce: str = "") -> Digest:
    """Push a tiny single-platform image with our own client; return the manifest digest."""
    layer = os.urandom(256) + nonce.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": nonce}).encode()
    layer_digest = await put_blob(client, target, layer)
    config_digest = await put_blob(client, target, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {
                "mediaType": mediatypes.OCI_CONFIG,
                "digest": str(config_digest),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": mediatypes.OCI_LAYER,
                    "digest": str(layer_digest),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return await client.put_manifest(target, manifest, mediatypes.OCI_MANIFEST)


# ---------------------------------------------------------------------- ping, manifests, blobs


async def test_ping_uses_plain_http_on_loopback(client: RegistryClient, registry: Registry) -> None:
    assert await client.ping(registry.host) == f"http://{registry.host}"


async def test_get_manifest_is_byte_exact_with_skopeo(
    client: RegistryClient, registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(registry)
    fetched = await client.get_manifest(ref(image.ref))
    assert fetched.data == inspect_raw(image.ref)
    assert str(fetched.digest) == image.digest
    assert fetched.media_type == mediatypes.OCI_INDEX
    by_digest = await client.get_manifest(ref(image.ref).with_digest(fetched.digest))
    assert by_digest.data == fetched.data


async def test_head_manifest_and_blob(
    client: RegistryClient, registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(registry, platforms=None, layers=1, layer_size=1000)
    desc = await client.head_manifest(ref(image.ref))
    assert desc is not None
    assert str(desc.digest) == image.digest
    assert desc.media_type == mediatypes.OCI_MANIFEST
    assert await client.head_manifest(ref(image.ref).with_tag("missing")) is None
    blob = Digest.parse(image.built.blob_digests[0])
    size = await client.head_blob(ref(image.ref), blob)
    assert size is not None
    assert size > 1000
    assert await client.head_blob(ref(image.ref), Digest.of(b"nope")) is None


async def test_missing_manifest_is_not_found(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_manifest(ref(f"{registry.host}/{repo('none')}:v1"))
    assert caught.value.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    assert "not found" in str(caught.value)


async def test_put_manifest_preserves_bytes_and_rejects_wrong_digest(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{registry.host}/{repo('put')}:v1")
    digest = await put_small_image(client, target)
    assert digest_of(str(target)) == str(digest)
    fetched = await client.get_manifest(target)
    with pytest.raises(DigestMismatchError):
        await client.put_manifest(
            target.with_digest(Digest.of(b"other")), fetched.data, fetched.media_type
        )


async def test_streamed_blob_round_trip(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{registry.host}/{repo('blob')}")
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = Digest.of(data)

    async def pieces():  # type: ignore[no-untyped-def]
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    await client.push_blob(target, digest, pieces(), len(data))
    assert registry.blob_path(str(digest)).read_bytes() == data
    received = b"".join([chunk async for chunk in client.iter_blob(target, digest)])
    assert received == data


async def test_chunked_upload(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{registry.host}/{repo('chunked')}")
    data = os.urandom(2_500_000)
    digest = Digest.of(data)
    await client.push_blob(target, digest, data, len(data), chunk_size=1_000_000)
    assert registry.blob_path(str(digest)).read_bytes() == data


async def test_registry_rejects_a_wrong_digest_upload(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{registry.host}/{repo('bad')}")
    data = b"some bytes"
    with pytest.raises(RegistryError) as caught:
        await client.push_blob(target, Digest.of(b"other bytes"), data, len(data))
    assert caught.value.code == "DIGEST_INVALID"
    assert not registry.has_blob(str(Digest.of(data)))


async def test_cross_repository_mount(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    source = ref(f"{registry.host}/{repo('mount-src')}")
    target = ref(f"{registry.host}/{repo('mount-dst')}")
    digest = await put_blob(client, source, os.urandom(5000))
    assert await client.start_upload(target, mount=digest, mount_from=source.repository) is None
    assert await client.head_blob(target, digest) == 5000
    # A digest the source does not hold: the registry opens a normal upload instead.
    location = await client.start_upload(
        target, mount=Digest.of(b"absent"), mount_from=source.repository
    )
    assert location is not None
    assert "/blobs/uploads/" in location


# ---------------------------------------------------------------------- tags


async def push_tags(client: RegistryClient, target: Reference, count: int) -> list[str]:
    await put_small_image(client, target.with_tag("t00"))
    fetched = await client.get_manifest(target.with_tag("t00"))
    tags = [f"t{i:02d}" for i in range(count)]
    for tag in tags[1:]:
        await client.put_manifest(target.with_tag(tag), fetched.data, fetched.media_type)
    return tags


async def test_list_tags_without_pagination(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    # docker-registry 2.8 ignores n and answers with every tag in one page.
    target = ref(f"{registry.host}/{repo('tags')}")
    tags = await push_tags(client, target, 12)
    assert sorted(await client.list_tags(target)) == tags


async def test_list_tags_follows_link_pagination(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.paginate_tags = True
    async with RegistryClient(options=FAST_RETRIES) as client:
        target = ref(f"{proxy.host}/{repo('paged')}")
        tags = await push_tags(client, target, 25)
        assert await client.list_tags(target, page_size=10) == tags
    pages = [p for m, p, s in proxy.log if "/tags/list" in p]
    assert len(pages) == 3
    assert "last=t09" in pages[1]
    assert "last=t19" in pages[2]


async def test_list_tags_adapts_to_capped_and_refused_page_sizes(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.paginate_tags = True
    proxy.tag_page_cap = 7
    proxy.tag_page_max = 100
    async with RegistryClient(options=FAST_RETRIES) as client:
        target = ref(f"{proxy.host}/{repo('capped')}")
        tags = await push_tags(client, target, 30)
        assert await client.list_tags(target) == tags
    statuses = [s for m, p, s in proxy.log if "/tags/list" in p]
    # n=1000 refused, n=100 accepted but capped to 7 per page: 30 tags in 5 pages.
    assert statuses == [400] + [200] * 5


async def test_list_tags_of_unknown_repository(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    with pytest.raises(NotFoundError):
        await client.list_tags(ref(f"{registry.host}/{repo('none')}"))


# ---------------------------------------------------------------------- the catalog, paged as tags


async def push_repositories(client: RegistryClient, host: str, count: int) -> list[str]:
    names = [f"cat/r{i:02d}" for i in range(count)]
    for name in names:
        await put_small_image(client, ref(f"{host}/{name}:v1"), nonce=name)
    return names


async def test_list_repositories_follows_link_pagination(
    registries: Callable[..., Registry], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    # A registry of its own: the shared ones hold every other test's repositories.
    proxy = proxy_for(registries())
    proxy.paginate_catalog = True
    async with RegistryClient(options=FAST_RETRIES) as client:
        names = await push_repositories(client, proxy.host, 12)
        listed = [name async for name in client.iter_repositories(proxy.host, page_size=5)]
    assert listed == names
    pages = [p for m, p, s in proxy.log if p.startswith("/v2/_catalog")]
    assert len(pages) == 3
    assert "last=cat%2Fr04" in pages[1]
    assert "last=cat%2Fr09" in pages[2]


async def test_list_repositories_adapts_to_capped_and_refused_page_sizes(
    registries: Callable[..., Registry], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registries())
    proxy.paginate_catalog = True
    proxy.tag_page_cap = 4
    proxy.tag_page_max = 100
    async with RegistryClient(options=FAST_RETRIES) as client:
        names = await push_repositories(client, proxy.host, 10)
        listed = [name async for name in client.iter_repositories(proxy.host)]
    assert listed == names
    statuses = [s for m, p, s in proxy.log if p.startswith("/v2/_catalog")]
    # n=1000 refused, n=100 accepted but capped to 4 per page: 10 names in 3 pages.
    assert statuses == [400] + [200] * 3


# ---------------------------------------------------------------------- referrers


async def test_referrers_fallback_tag_schema(
    client: RegistryClient, registry: Registry, repo: Callable[[str], str]
) -> None:
    subject_ref = ref(f"{registry.host}/{repo('subject')}:v1")
    subject_digest = await put_small_image(client, subject_ref)
    subject = await client.head_manifest(subject_ref)
    assert subject is not None
    empty = b"{}"
    empty_digest = await put_blob(client, subject_ref, empty)
    assert await client.referrers(subject_ref.with_digest(subject_digest)) == []

    async def attach(artifact_type: str) -> Digest:
        payload = os.urandom(64)
        payload_digest = await put_blob(client, subject_ref, payload)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {
                    "mediaType": mediatypes.OCI_EMPTY,
                    "digest": str(empty_digest),
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/octet-stream",
                        "digest": str(payload_digest),
                        "size": 64,
                    }
                ],
                "subject": {
                    "mediaType": subject.media_type,
                    "digest": str(subject.digest),
                    "size": subject.size,
                },
            }
        ).encode()
        digest = Digest.of(manifest)
        return await client.put_manifest(
            subject_ref.with_digest(digest), manifest, mediatypes.OCI_MANIFEST
        )

    sbom = await attach("application/spdx+json")
    sig = await attach("application/vnd.dev.sigstore.bundle+json")
    # docker-registry 2.8 has no referrers API: the client kept the sha256-<hex> index.
    assert registry.has_tag(subject_ref.repository, subject_digest.tag_form)
    found = await client.referrers(subject_ref.with_digest(subject_digest))
    assert {d.digest for d in found} == {sbom, sig}
    only_sbom = await client.referrers(
        subject_ref.with_digest(subject_digest), artifact_type="application/spdx+json"
    )
    assert [d.digest for d in only_sbom] == [sbom]


# ---------------------------------------------------------------------- auth


async def test_htpasswd_basic_auth(htpasswd_registry: Registry, repo: Callable[[str], str]) -> None:
    target = ref(f"{htpasswd_registry.host}/{repo('basic')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as anonymous:
        with pytest.raises(AuthenticationError) as caught:
            await anonymous.get_manifest(target)
        assert "--registry-username" in str(caught.value)
    wrong = StaticKeychain(Credential(USER, "wrong"))
    async with RegistryClient(wrong, FAST_RETRIES) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_manifest(target)
        assert "refused the credentials" in str(caught.value)
    good = StaticKeychain(Credential(USER, PASSWORD))
    async with RegistryClient(good, FAST_RETRIES) as client:
        digest = await put_small_image(client, target)
        assert (await client.get_manifest(target)).digest == digest
    assert digest_of(str(target), creds=f"{USER}:{PASSWORD}") == str(digest)


async def test_bearer_token_flow_caches_tokens_per_scope(
    token_registry: Registry, token_server: TokenServer, repo: Callable[[str], str]
) -> None:
    target = ref(f"{token_registry.host}/{repo('bearer')}:v1")
    keychain = StaticKeychain(Credential(USER, PASSWORD))
    token_server.requests.clear()
    async with RegistryClient(keychain, FAST_RETRIES) as client:
        digest = await put_small_image(client, target)
        for _ in range(5):
            assert (await client.get_manifest(target)).digest == digest
    scopes = [tuple(r.scopes) for r in token_server.requests]
    assert all(r.user == USER for r in token_server.requests)
    push_scope = (f"repository:{target.repository}:pull,push",)
    # One token for push+pull, reused by all eleven requests (uploads, manifest, gets).
    assert scopes.count(push_scope) == 1
    assert len(scopes) == 1


async def test_bearer_anonymous_and_wrong_password_are_refused(
    token_registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{token_registry.host}/{repo('bearer')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        with pytest.raises(AuthenticationError):
            await client.get_manifest(target)
    keychain = StaticKeychain(Credential(USER, "wrong"))
    async with RegistryClient(keychain, FAST_RETRIES) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_manifest(target)
        assert "refused the credentials" in str(caught.value)


async def test_identity_token_uses_oauth2_refresh_grant(
    token_registry: Registry, token_server: TokenServer, repo: Callable[[str], str]
) -> None:
    target = ref(f"{token_registry.host}/{repo('refresh')}:v1")
    token_server.requests.clear()
    keychain = StaticKeychain(Credential(identity_token="refresh-for-alice"))
    async with RegistryClient(keychain, FAST_RETRIES) as client:
        digest = await put_small_image(client, target)
        assert (await client.head_manifest(target)) is not None
    assert {r.grant for r in token_server.requests} == {"refresh_token"}
    assert digest_of(str(target), creds=f"{USER}:{PASSWORD}") == str(digest)


async def test_mount_asks_pull_on_source_and_push_on_destination(
    token_registry: Registry, token_server: TokenServer, repo: Callable[[str], str]
) -> None:
    source = ref(f"{token_registry.host}/{repo('msrc')}:v1")
    target = ref(f"{token_registry.host}/{repo('mdst')}")
    keychain = StaticKeychain(Credential(USER, PASSWORD))
    async with RegistryClient(keychain, FAST_RETRIES) as client:
        digest = await put_blob(client, source, os.urandom(100))
    token_server.requests.clear()
    async with RegistryClient(keychain, FAST_RETRIES) as client:
        assert await client.start_upload(target, mount=digest, mount_from=source.repository) is None
    assert [r.scopes for r in token_server.requests] == [
        [f"repository:{target.repository}:pull,push", f"repository:{source.repository}:pull"]
    ]


# ---------------------------------------------------------------------- TLS


async def test_tls_registry_with_ca(
    tls_registry: Registry, tls: Tls, repo: Callable[[str], str]
) -> None:
    target = ref(f"{tls_registry.host}/{repo('tls')}:v1")
    options = ClientOptions(tls=RegistryTLS(TLSConfig(ca_files=(str(tls.ca_file),))))
    async with RegistryClient(options=options) as client:
        assert await client.ping(tls_registry.host) == f"https://{tls_registry.host}"
        digest = await put_small_image(client, target)
    assert digest_of(str(target), cert_dir=tls.cert_dir) == str(digest)


async def test_tls_registry_without_ca_fails_clearly(
    tls_registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{tls_registry.host}/{repo('tls')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_manifest(target)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "--registry-ca-cert-path" in str(caught.value)


async def test_insecure_registry_skips_verification(
    tls_registry: Registry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{tls_registry.host}/{repo('tls')}:v1")
    options = ClientOptions(insecure_registries=frozenset({tls_registry.host}))
    async with RegistryClient(options=options) as client:
        assert await client.ping(tls_registry.host) == f"https://{tls_registry.host}"
        await put_small_image(client, target)


async def test_plain_http_refused_for_non_loopback_hosts() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never routed; we only check no http:// is attempted.
    async with RegistryClient(options=ClientOptions(retries=0, connect_timeout=0.2)) as client:
        with pytest.raises(TransportError) as caught:
            await client.ping("192.0.2.1:5000")
    assert "https://192.0.2.1:5000" in str(caught.value)


# ---------------------------------------------------------------------- retries, rate limit


async def test_retries_429_honouring_retry_after_and_pauses_everyone(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    name = repo("throttled")
    async with RegistryClient(options=FAST_RETRIES) as client:
        target = ref(f"{proxy.host}/{name}:v1")
        digest = await put_small_image(client, target)
        proxy.fail(429, 2, method="GET", path="/manifests/", headers={"Retry-After": "1"})
        started = time.monotonic()
        assert (await client.get_manifest(target)).digest == digest
        elapsed = time.monotonic() - started
        assert client.limiter.pauses >= 1
    assert elapsed >= 1.0
    statuses = [s for m, p, s in proxy.log if m == "GET" and "/manifests/" in p]
    assert statuses == [429, 429, 200]


async def test_retries_5xx_then_succeeds(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    async with RegistryClient(options=FAST_RETRIES) as client:
        target = ref(f"{proxy.host}/{repo('flaky')}:v1")
        proxy.fail(500, 3, method="PUT", path="/manifests/")
        proxy.fail(503, 2, method="HEAD")
        digest = await put_small_image(client, target)
        assert (await client.head_manifest(target)) is not None
        assert client.stats.retries >= 5
    assert digest_of(str(target)) == str(digest)


async def test_dropped_connections_are_retried(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    async with RegistryClient(options=FAST_RETRIES) as client:
        target = ref(f"{proxy.host}/{repo('dropped')}:v1")
        digest = await put_small_image(client, target)
        proxy.fail(0, 3, method="GET", path="/manifests/")
        assert (await client.get_manifest(target)).digest == digest
        # The first drop hits a kept-alive connection, which the transport itself retries once.
        assert client.stats.retries >= 2
    dropped = [s for m, p, s in proxy.log if m == "GET" and "/manifests/" in p]
    assert dropped == [0, 0, 0, 200]


async def test_persistent_5xx_gives_up_with_registry_error(
    registry: Registry, repo: Callable[[str], str], proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    options = ClientOptions(retries=2, backoff=0.01)
    async with RegistryClient(options=options) as client:
        await client.ping(proxy.host)
        proxy.fail(502, 100, path="/manifests/")
        with pytest.raises(RegistryError) as caught:
            await client.get_manifest(ref(f"{proxy.host}/{repo('down')}:v1"))
    assert caught.value.status == 502
    assert sum(1 for m, p, s in proxy.log if s == 502) == 3


async def test_connection_refused_is_a_transport_error() -> None:
    async with RegistryClient(options=ClientOptions(retries=1, backoff=0.01)) as client:
        with pytest.raises(TransportError) as caught:
            await client.ping("127.0.0.1:1")
    assert "127.0.0.1:1" in str(caught.value)


async def test_shared_rate_limit_spaces_requests(
    registry: Registry, repo: Callable[[str], str]
) -> None:
    options = ClientOptions(rate_limit=20, burst=2)
    async with RegistryClient(options=options) as client:
        await client.ping(registry.host)
        target = ref(f"{registry.host}/{repo('limited')}:v1")
        started = time.monotonic()
        for _ in range(12):
            assert await client.head_manifest(target) is None
        elapsed = time.monotonic() - started
    # 2 at once from the burst, then 20/s: ten more need at least half a second.
    assert elapsed >= 0.45


# ---------------------------------------------------------------------- proxies


@pytest.mark.parametrize(
    ("proxies", "routes"),
    [
        ({}, {}),
        ({"no": "example.com"}, {}),  # NO_PROXY alone changes nothing
        (
            {"http": "proxy:3128", "https": "https://proxy:3129"},
            {"http://": "http://proxy:3128", "https://": "https://proxy:3129"},
        ),
        ({"all": "socks5://p:1080", "no": "*"}, {}),
        (
            {"https": "http://p:1", "no": "example.com, .corp.example,10.0.0.1,::1,localhost"},
            {
                "https://": "http://p:1",
                "all://*example.com": None,
                "all://*.corp.example": None,
                "all://10.0.0.1": None,
                "all://[::1]": None,
                "all://*localhost": None,
            },
        ),
    ],
)
def test_proxy_routes_follow_curls_rules(
    proxies: dict[str, str], routes: dict[str, str | None]
) -> None:
    assert proxy_routes(proxies) == routes
