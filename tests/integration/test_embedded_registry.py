"""The embedded registry (``imgctl registry serve``) against skopeo, docker-registry and our client.

Every test talks to a real ``imgctl registry serve`` subprocess over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from imgctl.authn import Credential, StaticKeychain
from imgctl.oci import Digest, Reference
from imgctl.oci import mediatypes as mt
from imgctl.remote import RegistryClient, copy_image, copy_images

from ..conftest import FAST_RETRIES, PASSWORD, USER, PushedImage
from ..support.embedded import IMGCTL, EmbeddedRegistry, start_embedded
from ..support.layout import BuiltImage
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw, push_layout, skopeo

EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRegistry]:
    server = start_embedded(tmp_path_factory.mktemp("embedded") / "root", request.addfinalizer)
    yield server
    # Every refusal of this module's tests is an answer, never a crash in the server.
    assert "Traceback" not in server.output()
    assert "failed" not in server.output()


def ref(value: str) -> Reference:
    return Reference.parse(value)


def raw(
    host: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with the path sent exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if body is not None or method in ("PUT", "POST", "PATCH"):
            connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def code_of(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


async def push_blob(client: RegistryClient, target: Reference, data: bytes) -> str:
    digest = Digest.of(data)
    await client.push_blob(target, digest, data, len(data))
    return str(digest)


async def push_image(
    client: RegistryClient,
    target: Reference,
    *,
    layer: bytes | None = None,
    artifact_type: str | None = None,
    config_type: str = mt.OCI_CONFIG,
    subject: dict[str, object] | None = None,
    annotations: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """Push a one-layer OCI manifest (blobs first); returns its bytes and digest."""
    layer = layer if layer is not None else os.urandom(1000)
    await push_blob(client, target, EMPTY_CONFIG)
    await push_blob(client, target, layer)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(config_type, EMPTY_CONFIG),
        "layers": [descriptor(mt.OCI_LAYER, layer)],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if subject:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    data = json.dumps(manifest).encode()
    digest = await client.put_manifest(target, data, mt.OCI_MANIFEST)
    return data, str(digest)


def test_base_endpoint_answers_the_version_check(embedded: EmbeddedRegistry) -> None:
    status, headers, body = raw(embedded.host, "GET", "/v2/")
    assert (status, body) == (200, b"{}")
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert f"imgctl registry serve: listening on http {embedded.host}" in embedded.output()


# ---------------------------------------------------------------------- skopeo


def test_skopeo_pushes_and_pulls_multi_arch_with_digests_preserved(
    embedded: EmbeddedRegistry,
    registry: Registry,
    layouts: Callable[..., BuiltImage],
    repo: Callable[[str], str],
) -> None:
    built = layouts(tag="v1", layers=2, layer_size=400_000)
    into = f"{embedded.host}/{repo('skopeo')}:v1"
    push_layout(built.oci_ref, into)
    assert digest_of(into) == built.digest
    index = json.loads(inspect_raw(into))
    assert index["mediaType"] == mt.OCI_INDEX
    assert [c["platform"]["architecture"] for c in index["manifests"]] == ["amd64", "arm64"]
    for child in index["manifests"]:
        assert digest_of(f"{into.rsplit(':', 1)[0]}@{child['digest']}") == child["digest"]

    copy = ("copy", "--all", "--preserve-digests", "--quiet")
    tls = ("--src-tls-verify=false", "--dest-tls-verify=false")
    out = f"{registry.host}/{repo('from-embedded')}:v1"
    skopeo(*copy, *tls, f"docker://{into}", f"docker://{out}")
    assert digest_of(out) == built.digest
    back = f"{embedded.host}/{repo('back')}:v2"
    skopeo(*copy, *tls, f"docker://{out}", f"docker://{back}")
    assert digest_of(back) == built.digest

    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{back.rsplit(':', 1)[0]}")
    assert json.loads(listed.stdout)["Tags"] == ["v2"]


# ---------------------------------------------------------------------- imgctl's client


async def test_client_copies_both_ways_and_mounts_within_the_registry(
    client: RegistryClient,
    embedded: EmbeddedRegistry,
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=2, layer_size=300_000)
    into = ref(f"{embedded.host}/{repo('copy')}:v1")
    result = await copy_image(client, ref(image.ref), into)
    assert (result.status, str(result.digest)) == ("copied", image.digest)
    assert digest_of(str(into)) == image.digest

    # Within the embedded registry: blobs are mounted, not sent again.
    uploaded = client.stats.bytes_uploaded
    inside = ref(f"{embedded.host}/{repo('mounted')}:v1")
    result = await copy_image(client, into, inside)
    assert result.blobs_mounted > 0
    assert result.blobs_copied == 0
    assert client.stats.bytes_uploaded - uploaded < 20_000  # manifests only

    out = ref(f"{registry.host}/{repo('out')}:v1")
    [result] = await copy_images(client, [(inside, out)])
    assert (result.status, str(result.digest)) == ("copied", image.digest)
    assert digest_of(str(out)) == image.digest


async def test_chunked_upload_and_out_of_order_chunk(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{embedded.host}/{repo('chunks')}:v1")
    data = os.urandom(300_000)
    digest = Digest.of(data)
    await client.push_blob(target, digest, data, len(data), chunk_size=64 * 1024)
    assert await client.head_blob(target, digest) == len(data)
    assert b"".join([c async for c in client.iter_blob(target, digest)]) == data

    # Step by step, with the raw protocol around the client's calls.
    other = os.urandom(250)
    location = await client.start_upload(target)
    assert location is not None
    location = await client.upload_chunk(target, location, 0, other[:100])
    path = location.split(embedded.host, 1)[1]
    status, headers, body = raw(
        embedded.host, "PATCH", path, other[200:], {"Content-Range": "200-249"}
    )
    assert (status, code_of(body)) == (416, "BLOB_UPLOAD_INVALID")
    assert headers["Range"] == "0-99"
    # A body shorter than its Content-Range is refused and leaves the upload as it was.
    status, _, body = raw(
        embedded.host, "PATCH", path, other[100:150], {"Content-Range": "100-199"}
    )
    assert (status, code_of(body)) == (400, "SIZE_INVALID")
    status, headers, _ = raw(embedded.host, "GET", path)
    assert (status, headers["Range"], headers["Docker-Upload-UUID"]) == (
        204,
        "0-99",
        path.rsplit("/", 1)[1],
    )
    location = await client.upload_chunk(target, location, 100, other[100:200])
    # The last chunk travels with the closing PUT.
    await client.finish_upload(target, location, Digest.of(other), other[200:])
    assert b"".join([c async for c in client.iter_blob(target, Digest.of(other))]) == other


async def test_monolithic_post_sha512_and_ranges(
    embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    name = repo("mono")
    data = os.urandom(5000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    status, headers, _ = raw(
        embedded.host, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data
    )
    assert (status, headers["Location"]) == (201, f"/v2/{name}/blobs/{digest}")
    status, headers, body = raw(embedded.host, "GET", f"/v2/{name}/blobs/{digest}")
    assert (status, body, headers["Docker-Content-Digest"]) == (200, data, digest)
    assert headers["Content-Type"] == "application/octet-stream"
    status, headers, body = raw(
        embedded.host, "GET", f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=10-19"}
    )
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], "bytes 10-19/5000")
    status, _, body = raw(
        embedded.host, "GET", f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=-5"}
    )
    assert (status, body) == (206, data[-5:])
    status, headers, _ = raw(
        embedded.host, "GET", f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=9000-"}
    )
    assert (status, headers["Content-Range"]) == (416, "bytes */5000")
    # A colon encoded as %3A is the same digest.
    status, _, _ = raw(embedded.host, "HEAD", f"/v2/{name}/blobs/{digest.replace(':', '%3A')}")
    assert status == 200


async def test_cross_repository_mount(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    source = ref(f"{embedded.host}/{repo('mount-src')}:v1")
    target = ref(f"{embedded.host}/{repo('mount-dst')}:v1")
    data = os.urandom(100_000)
    digest = Digest.of(data)
    await client.push_blob(source, digest, data, len(data))
    uploaded = client.stats.bytes_uploaded
    assert await client.start_upload(target, mount=digest, mount_from=source.repository) is None
    assert client.stats.bytes_uploaded == uploaded
    assert await client.head_blob(target, digest) == len(data)

    # The raw answer: 201 with the blob's location.
    third = repo("mount-third")
    status, headers, _ = raw(
        embedded.host,
        "POST",
        f"/v2/{third}/blobs/uploads/?mount={digest}&from={source.repository}",
        b"",
    )
    assert (status, headers["Location"], headers["Docker-Content-Digest"]) == (
        201,
        f"/v2/{third}/blobs/{digest}",
        str(digest),
    )
    # A repository that does not hold the blob cannot lend it: an upload session instead.
    stranger = ref(f"{embedded.host}/{repo('mount-none')}:v1")
    await push_blob(client, stranger, b"something else")
    status, headers, _ = raw(
        embedded.host,
        "POST",
        f"/v2/{repo('mount-x')}/blobs/uploads/?mount={digest}&from={stranger.repository}",
        b"",
    )
    assert status == 202
    assert "/blobs/uploads/" in headers["Location"]
    assert headers["Range"] == "0-0"
    assert headers["Docker-Upload-UUID"]


async def test_tags_are_paginated_with_link_headers(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{embedded.host}/{repo('tags')}:seed")
    data, _ = await push_image(client, target)
    tags = [f"t{i:03d}" for i in range(250)] + ["Upper", "_under", "seed"]
    gate = asyncio.Semaphore(16)

    async def tag(name: str) -> None:
        async with gate:
            await client.put_manifest(target.with_tag(name), data, mt.OCI_MANIFEST)

    await asyncio.gather(*(tag(t) for t in tags if t != "seed"))
    # spec.md v1.1: lexical order, case-insensitive (test_embedded_spec.py has the details).
    expected = sorted(tags, key=lambda tag: (tag.lower(), tag))

    pages: list[list[str]] = []
    async with httpx.AsyncClient(base_url=f"http://{embedded.host}") as http:
        url: str | None = f"/v2/{target.repository}/tags/list?n=100"
        while url:
            response = await http.get(url)
            assert response.status_code == 200
            pages.append(response.json()["tags"])
            link = response.headers.get("link")
            url = link.split(";")[0].strip("<>") if link else None
            if url:
                assert link is not None
                assert link.endswith('; rel="next"')
        assert [len(p) for p in pages] == [100, 100, 53]
        assert [t for page in pages for t in page] == expected
        response = await http.get(f"/v2/{target.repository}/tags/list?n=0")
        assert response.json()["tags"] == []
        assert "link" not in response.headers
        response = await http.get(f"/v2/{target.repository}/tags/list?last=t247")
        assert response.json()["tags"] == ["t248", "t249", "Upper"]
        response = await http.get(f"/v2/{target.repository}/tags/list?n=x")
        assert response.status_code == 400

        response = await http.get("/v2/_catalog?n=1")
        assert len(response.json()["repositories"]) == 1
        assert "link" in response.headers
    assert await client.list_tags(target, page_size=100) == expected


async def test_referrers(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{embedded.host}/{repo('refs')}:v1")
    name = target.repository
    subject_data, subject_digest = await push_image(client, target)
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": subject_digest, "size": len(subject_data)}

    sbom = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor(mt.OCI_EMPTY, EMPTY_CONFIG),
        "layers": [descriptor(mt.OCI_EMPTY, EMPTY_CONFIG)],
        "subject": subject,
        "annotations": {"org.example.kind": "sbom"},
    }
    sbom_data = json.dumps(sbom).encode()
    async with httpx.AsyncClient(base_url=f"http://{embedded.host}") as http:
        response = await http.put(
            f"/v2/{name}/manifests/{sha256(sbom_data)}",
            content=sbom_data,
            headers={"Content-Type": mt.OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
        assert response.headers["OCI-Subject"] == subject_digest
        assert response.headers["Docker-Content-Digest"] == sha256(sbom_data)

        # No artifactType: the config's media type stands in for it.
        _, signature_digest = await push_image(
            client,
            target.with_tag("sig"),
            config_type="application/vnd.example.signature.config",
            subject=subject,
        )

        response = await http.get(f"/v2/{name}/referrers/{subject_digest}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == mt.OCI_INDEX
        index = response.json()
        assert index["schemaVersion"] == 2
        assert index["mediaType"] == mt.OCI_INDEX
        found = {d["digest"]: d for d in index["manifests"]}
        assert found[sha256(sbom_data)] == {
            "mediaType": mt.OCI_MANIFEST,
            "digest": sha256(sbom_data),
            "size": len(sbom_data),
            "artifactType": "application/vnd.example.sbom",
            "annotations": {"org.example.kind": "sbom"},
        }
        assert found[signature_digest]["artifactType"] == "application/vnd.example.signature.config"

        response = await http.get(
            f"/v2/{name}/referrers/{subject_digest}",
            params={"artifactType": "application/vnd.example.sbom"},
        )
        assert response.headers["OCI-Filters-Applied"] == "artifactType"
        assert [d["digest"] for d in response.json()["manifests"]] == [sha256(sbom_data)]

        response = await http.get(f"/v2/{name}/referrers/sha256:{'0' * 64}")
        assert (response.status_code, response.json()["manifests"]) == (200, [])
        response = await http.get(f"/v2/{name}/referrers/sha256:abc")
        assert response.status_code == 400

        # Deleting a referrer takes it out of the list.
        response = await http.delete(f"/v2/{name}/manifests/{sha256(sbom_data)}")
        assert response.status_code == 202
        response = await http.get(f"/v2/{name}/referrers/{subject_digest}")
        assert [d["digest"] for d in response.json()["manifests"]] == [signature_digest]

    listed = await client.referrers(target.with_digest(Digest.parse(subject_digest)))
    assert [str(d.digest) for d in listed] == [signature_digest]


async def test_docker_media_types_and_a_referrer_before_its_subject(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{embedded.host}/{repo('docker')}:v1")
    name = target.repository
    layer = os.urandom(2000)
    await push_blob(client, target, EMPTY_CONFIG)
    await push_blob(client, target, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": descriptor(mt.DOCKER_CONFIG, EMPTY_CONFIG),
            "layers": [
                descriptor(mt.DOCKER_LAYER, layer),
                # Foreign layers live elsewhere: the registry must not ask for them.
                {**descriptor(mt.DOCKER_FOREIGN_LAYER, b"far away"), "urls": ["https://x/y"]},
            ],
        },
        indent=1,
    ).encode()
    digest = await client.put_manifest(
        target.with_digest(Digest.of(manifest)), manifest, mt.DOCKER_MANIFEST
    )
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST_LIST,
            "manifests": [
                {
                    **descriptor(mt.DOCKER_MANIFEST, manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    await client.put_manifest(target, listing, mt.DOCKER_MANIFEST_LIST)
    fetched = await client.get_manifest(target)
    assert (fetched.data, fetched.media_type) == (listing, mt.DOCKER_MANIFEST_LIST)
    assert (await client.get_manifest(target.with_digest(digest))).data == manifest

    # A referrer may arrive before its subject (the spec requires accepting it).
    later = {"mediaType": mt.OCI_MANIFEST, "digest": sha256(b"later"), "size": 5}
    _, early = await push_image(
        client, target.with_tag("early"), artifact_type="application/x.early", subject=later
    )
    status, _, body = raw(embedded.host, "GET", f"/v2/{name}/referrers/{later['digest']}")
    assert status == 200
    assert [d["digest"] for d in json.loads(body)["manifests"]] == [early]


async def test_manifest_and_blob_head_get_delete(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    target = ref(f"{embedded.host}/{repo('crud')}:v1")
    name = target.repository
    layer = os.urandom(3000)
    data, digest = await push_image(client, target, layer=layer)
    host = embedded.host

    status, headers, body = raw(host, "HEAD", f"/v2/{name}/manifests/v1")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"] == mt.OCI_MANIFEST
    assert headers["Docker-Content-Digest"] == digest
    assert headers["Content-Length"] == str(len(data))
    status, headers, body = raw(host, "GET", f"/v2/{name}/manifests/{digest}")
    assert (status, body) == (200, data)

    status, headers, body = raw(host, "HEAD", f"/v2/{name}/blobs/{sha256(layer)}")
    assert (status, headers["Content-Length"], body) == (200, "3000", b"")

    # Deleting a tag keeps the manifest.
    assert raw(host, "DELETE", f"/v2/{name}/manifests/v1")[0] == 202
    status, _, body = raw(host, "GET", f"/v2/{name}/manifests/v1")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")
    assert raw(host, "GET", f"/v2/{name}/manifests/{digest}")[0] == 200

    # Deleting by digest takes the tags pointing at it too.
    await client.put_manifest(target.with_tag("again"), data, mt.OCI_MANIFEST)
    assert raw(host, "DELETE", f"/v2/{name}/manifests/{digest}")[0] == 202
    for reference in (digest, "again"):
        status, _, body = raw(host, "GET", f"/v2/{name}/manifests/{reference}")
        assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")
    status, _, body = raw(host, "DELETE", f"/v2/{name}/manifests/{digest}")
    assert (status, code_of(body)) == (404, "MANIFEST_UNKNOWN")

    assert raw(host, "DELETE", f"/v2/{name}/blobs/{sha256(layer)}")[0] == 202
    assert raw(host, "HEAD", f"/v2/{name}/blobs/{sha256(layer)}")[0] == 404
    status, _, body = raw(host, "GET", f"/v2/{name}/blobs/{sha256(layer)}")
    assert (status, code_of(body)) == (404, "BLOB_UNKNOWN")


async def test_error_codes(
    client: RegistryClient, embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    host = embedded.host
    target = ref(f"{embedded.host}/{repo('errors')}:v1")
    name = target.repository
    data, _ = await push_image(client, target)

    # A wrong digest at the end of an upload: refused, and nothing is kept.
    content = b"these bytes"
    location = await client.start_upload(target)
    assert location is not None
    path = location.split(host, 1)[1]
    wrong = sha256(b"other bytes")
    status, _, body = raw(host, "PUT", f"{path}?digest={wrong}", content)
    assert (status, code_of(body)) == (400, "DIGEST_INVALID")
    status, _, body = raw(host, "GET", path)
    assert (status, code_of(body)) == (404, "BLOB_UPLOAD_UNKNOWN")
    assert raw(host, "HEAD", f"/v2/{name}/blobs/{wrong}")[0] == 404
    assert raw(host, "HEAD", f"/v2/{name}/blobs/{sha256(content)}")[0] == 404
    status, _, body = raw(host, "PUT", path + f"?digest={sha256(content)}", content)
    assert (status, code_of(body)) == (404, "BLOB_UPLOAD_UNKNOWN")

    def put_manifest(
        reference: str, manifest: bytes, media_type: str = mt.OCI_MANIFEST
    ) -> tuple[int, str]:
        status, _, body = raw(
            host, "PUT", f"/v2/{name}/manifests/{reference}", manifest, {"Content-Type": media_type}
        )
        return status, code_of(body) if status >= 400 else ""

    assert put_manifest(sha256(b"not these"), data) == (400, "DIGEST_INVALID")
    missing_layer = json.loads(data)
    missing_layer["layers"][0]["digest"] = sha256(b"never pushed")
    assert put_manifest("v2", json.dumps(missing_layer).encode()) == (400, "MANIFEST_BLOB_UNKNOWN")
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [descriptor(mt.OCI_MANIFEST, b"no such manifest")],
    }
    assert put_manifest("v2", json.dumps(index).encode(), mt.OCI_INDEX) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    assert put_manifest("v2", b"{not json") == (400, "MANIFEST_INVALID")
    assert put_manifest("v2", data, mt.OCI_INDEX) == (400, "MANIFEST_INVALID")  # type mismatch
    assert put_manifest(
        "v2", data, "application/vnd.docker.distribution.manifest.v1+prettyjws"
    ) == (
        400,
        "MANIFEST_INVALID",
    )
    assert raw(host, "GET", f"/v2/{name}/manifests/v2")[0] == 404  # nothing above was stored

    cases = [
        ("GET", f"/v2/{name}/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/{repo('never')}/manifests/v1", 404, "NAME_UNKNOWN"),
        ("GET", f"/v2/{repo('never')}/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", f"/v2/{name}/blobs/{sha256(b'absent')}", 404, "BLOB_UNKNOWN"),
        ("DELETE", f"/v2/{name}/blobs/{sha256(b'absent')}", 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/Test/Upper/tags/list", 400, "NAME_INVALID"),
        ("PUT", "/v2/UPPER/manifests/v1", 400, "NAME_INVALID"),
        ("GET", f"/v2/{'a' * 256}/tags/list", 400, "NAME_INVALID"),
        ("POST", f"/v2/{name}/manifests/v1", 405, "UNSUPPORTED"),
        (
            "GET",
            f"/v2/{name}/blobs/uploads/{'0' * 8}-0000-4000-8000-{'0' * 12}",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        ("GET", f"/v2/{name}/nothing", 404, "UNSUPPORTED"),
    ]
    for method, url, expected_status, expected_code in cases:
        status, _, body = raw(host, method, url, b"" if method in ("PUT", "POST") else None)
        assert (method, url, status, code_of(body)) == (method, url, expected_status, expected_code)


# ---------------------------------------------------------------------- path traversal

_UUID = "00000000-0000-4000-8000-000000000000"
_HEX = "a" * 64


def test_path_traversal_is_refused_and_nothing_leaves_the_root(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "outer" / "inner" / "root"
    server = start_embedded(root, request.addfinalizer)
    host = server.host
    # A real upload in repository "a", to aim traversal digests at.
    status, headers, _ = raw(host, "POST", "/v2/a/blobs/uploads/", b"")
    assert status == 202
    upload = headers["Location"]
    status, headers, _ = raw(host, "POST", "/v2/other/blobs/uploads/", b"")
    foreign = headers["Location"].rsplit("/", 1)[1]

    name_invalid = ("NAME_INVALID", 400)
    digest_invalid = ("DIGEST_INVALID", 400)
    tag_invalid = ("TAG_INVALID", 400)  # a push to it
    # Reading or deleting by it: no manifest has that reference ("a" holds none at all).
    no_such_tag = ("NAME_UNKNOWN", 404)
    upload_unknown = ("BLOB_UPLOAD_UNKNOWN", 404)
    not_found = (None, 404)
    payload = b'{"schemaVersion":2}'
    cases: list[tuple[str, str, tuple[str | None, int]]] = [
        # repository names
        ("GET", "/v2/../../escape/manifests/latest", name_invalid),
        ("PUT", "/v2/../../escape/manifests/latest", name_invalid),
        ("GET", "/v2/%2e%2e/%2e%2e/escape/tags/list", name_invalid),
        ("PUT", "/v2/a%2F..%2F..%2Fescape/manifests/latest", name_invalid),
        ("PUT", "/v2/a/..%2f..%2fescape/manifests/latest", name_invalid),
        ("POST", "/v2/..%2f..%2f..%2fescape/blobs/uploads/", name_invalid),
        ("POST", "/v2/..\\..\\escape/blobs/uploads/", name_invalid),
        ("POST", "/v2//tmp/escape/blobs/uploads/", name_invalid),
        ("PATCH", f"/v2/../escape/blobs/uploads/{_UUID}", name_invalid),
        ("DELETE", f"/v2/a/../escape/blobs/sha256:{_HEX}", name_invalid),
        ("HEAD", f"/v2/a/%2e%2e/escape/blobs/sha256:{_HEX}", (None, 400)),
        ("GET", f"/v2/a%00b/referrers/sha256:{_HEX}", name_invalid),
        ("POST", f"/v2/a/blobs/uploads/?mount=sha256:{_HEX}&from=../../escape", name_invalid),
        ("POST", f"/v2/a/blobs/uploads/?mount=sha256:{_HEX}&from=%2Fetc", name_invalid),
        ("POST", f"/v2/a/blobs/uploads/?mount=sha256:{_HEX}&from=a%00", name_invalid),
        ("GET", "/v2/a/./tags/list", name_invalid),
        ("GET", "/v2/%c0%ae%c0%ae/tags/list", name_invalid),  # overlong UTF-8 for ".."
        ("PUT", "/v2/C:%5Cescape/manifests/latest", name_invalid),
        ("GET", f"/v2/{'a' * 256}/manifests/latest", name_invalid),
        ("GET", f"/v2/{'a/' * 1100}a/tags/list", name_invalid),  # a path over 2048
        # tags
        ("PUT", "/v2/a/manifests/..", tag_invalid),
        ("PUT", "/v2/a/manifests/%2e%2e", tag_invalid),
        ("PUT", "/v2/a/manifests/..%2f..%2fescape", tag_invalid),
        ("PUT", "/v2/a/manifests/..%5c..%5cescape", tag_invalid),
        ("PUT", "/v2/a/manifests/..\\..\\escape", tag_invalid),
        ("GET", "/v2/a/manifests/v1%00", no_such_tag),
        ("HEAD", "/v2/a/manifests/..%2f..%2fescape", (None, 404)),
        ("HEAD", "/v2/a/blobs/uploads/..%2fescape", (None, 404)),
        ("DELETE", "/v2/a/manifests/%2fetc%2fpasswd", no_such_tag),
        ("DELETE", "/v2/a/manifests/../../escape", no_such_tag),
        ("PUT", "/v2/a/manifests/../../escape", tag_invalid),
        ("GET", "/v2/a/manifests//etc/passwd", no_such_tag),
        ("PUT", "/v2/a/manifests/v1/", tag_invalid),
        ("GET", "/v2/a/manifests/.hidden", no_such_tag),
        ("PUT", f"/v2/a/manifests/{'v' * 129}", tag_invalid),
        # digests
        ("GET", "/v2/a/blobs/sha256:..%2f..%2fescape", digest_invalid),
        ("GET", "/v2/a/blobs/..%2f..%2fetc%2fpasswd", digest_invalid),
        ("DELETE", f"/v2/a/blobs/sha256:{_HEX[:-2]}%00", digest_invalid),
        ("GET", f"/v2/a/blobs/SHA256:{_HEX}", digest_invalid),
        ("GET", f"/v2/a/blobs/sha384:{'a' * 96}", digest_invalid),
        ("PUT", "/v2/a/manifests/sha256:..%2f..%2fescape", digest_invalid),
        ("GET", "/v2/a/referrers/sha256:%2e%2e", digest_invalid),
        ("GET", f"/v2/a/referrers/sha256:../../{_HEX}", digest_invalid),
        ("GET", f"/v2/a/blobs/sha256:../../{_HEX}", digest_invalid),
        ("DELETE", f"/v2/a/blobs/sha256/../..:{_HEX}", digest_invalid),
        ("GET", f"/v2/a/blobs/sha256%2F..%2F..:{_HEX}", digest_invalid),
        ("GET", f"/v2/a/blobs/sha256%253A{_HEX}", digest_invalid),  # double encoding
        ("GET", f"/v2/a/blobs/sha256+b64:{_HEX}", digest_invalid),
        ("PUT", f"/v2/a/manifests/sha256:../{_HEX}", digest_invalid),
        ("PUT", f"/v2/a/manifests/sha512:{'a' * 128}/../../escape", digest_invalid),
        ("POST", "/v2/a/blobs/uploads/?digest=sha256:../../escape", digest_invalid),
        ("POST", "/v2/a/blobs/uploads/?mount=../../escape&from=b", digest_invalid),
        ("PUT", f"{upload}?digest=sha256:..%2F..%2Fescape", digest_invalid),
        ("PUT", f"{upload}?digest=/etc/passwd", digest_invalid),
        # upload ids
        ("PATCH", "/v2/a/blobs/uploads/..%2f..%2fescape", upload_unknown),
        ("PUT", f"/v2/a/blobs/uploads/%2e%2e?digest=sha256:{_HEX}", upload_unknown),
        ("GET", "/v2/a/blobs/uploads/..\\..\\escape", upload_unknown),
        ("DELETE", f"/v2/a/blobs/uploads/{_UUID}%00", upload_unknown),
        ("PATCH", f"/v2/a/blobs/uploads/{foreign}", upload_unknown),  # another repository's
        ("PUT", f"/v2/a/blobs/uploads/{_UUID.upper()}?digest=sha256:{_HEX}", upload_unknown),
        ("PUT", "/v2/a/blobs/uploads/../../../escape", upload_unknown),
        # outside the API
        ("GET", "/etc/passwd", not_found),
        ("PUT", "/../../escape", not_found),
        ("GET", "//etc/passwd", not_found),
    ]
    before = {p for p in tmp_path.rglob("*")}
    for method, path, (code, expected) in cases:
        body = payload if method in ("PUT", "POST", "PATCH") else None
        status, _, answer = raw(host, method, path, body)
        assert (method, path, status) == (method, path, expected), answer
        if code is not None:
            assert (method, path, code_of(answer)) == (method, path, code)

    assert raw(host, "GET", "/v2/")[0] == 200
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if root not in p.parents and p != root]
    assert outside == [], outside
    assert not [p for p in root.rglob("*") if "escape" in p.name or "passwd" in p.name]
    # The upload of the first request is still intact, the other's too.
    assert raw(host, "GET", upload)[0] == 204


def test_a_symlink_out_of_the_root_is_refused(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The second line of defence: valid names, but a link inside the root leads out of it."""
    root = tmp_path / "root"
    server = start_embedded(root, request.addfinalizer)
    host = server.host
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "repositories" / "evil").symlink_to(outside, target_is_directory=True)
    (root / "blobs" / "sha512").symlink_to(outside, target_is_directory=True)
    data = b"some blob"
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    status, _, _ = raw(host, "POST", f"/v2/ok/blobs/uploads/?digest={sha256(data)}", data)
    assert status == 201

    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    cases = [
        ("POST", "/v2/evil/blobs/uploads/", b""),
        ("POST", f"/v2/evil/blobs/uploads/?digest={sha256(data)}", data),
        ("POST", f"/v2/evil/blobs/uploads/?mount={sha256(data)}&from=ok", b""),
        ("POST", f"/v2/ok/blobs/uploads/?mount={sha256(data)}&from=evil", b""),
        ("PUT", "/v2/evil/manifests/v1", manifest.encode()),
        ("GET", "/v2/evil/tags/list", None),
        ("GET", f"/v2/evil/blobs/{sha256(data)}", None),
        ("DELETE", "/v2/evil/manifests/v1", None),
        ("GET", f"/v2/evil/referrers/{sha256(data)}", None),
        ("POST", f"/v2/ok/blobs/uploads/?digest={sha512}", data),  # into blobs/sha512
    ]
    for method, path, body in cases:
        headers = {"Content-Type": mt.OCI_INDEX} if method == "PUT" else None
        status, _, answer = raw(host, method, path, body, headers)
        assert (method, path, status, code_of(answer)) == (method, path, 400, "NAME_INVALID")
    assert list(outside.iterdir()) == []
    assert list((root / "uploads").iterdir()) == []  # refused uploads leave no session
    # Only the blob pushed to "ok" was stored: the refused manifest left no bytes behind.
    stored = [p.name for p in (root / "blobs").rglob("*") if p.is_file()]
    assert stored == [sha256(data).split(":", 1)[1]]
    assert "refused a path outside the root" in server.output()
    assert "Traceback" not in server.output()


# ---------------------------------------------------------------------- htpasswd


def test_htpasswd_basic_auth(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    layouts: Callable[..., BuiltImage],
    repo: Callable[[str], str],
) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd = tmp_path / "htpasswd"
    # Apache's htpasswd -B writes $2y$; bcrypt writes $2b$. Both must work.
    htpasswd.write_text(f"# users\n{USER}:$2y${hashed[4:]}\nbob:{hashed}\n")
    server = start_embedded(tmp_path / "root", request.addfinalizer, htpasswd=htpasswd)

    def basic(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    for headers in (
        None,
        basic(USER, "wrong"),
        basic("mallory", PASSWORD),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
    ):
        status, answer_headers, body = raw(server.host, "GET", "/v2/", headers=headers)
        assert (status, code_of(body)) == (401, "UNAUTHORIZED")
        assert answer_headers["WWW-Authenticate"] == 'Basic realm="imgctl"'
    assert raw(server.host, "GET", "/v2/", headers=basic(USER, PASSWORD))[0] == 200
    assert raw(server.host, "GET", "/v2/", headers=basic("bob", PASSWORD))[0] == 200
    status, _, _ = raw(server.host, "POST", "/v2/a/blobs/uploads/", b"", basic(USER, "no"))
    assert status == 401

    built = layouts(tag="v1", layers=1, layer_size=50_000)
    target = f"{server.host}/{repo('auth')}:v1"
    creds = f"{USER}:{PASSWORD}"
    push_layout(built.oci_ref, target, creds=creds)
    assert digest_of(target, creds=creds) == built.digest
    with pytest.raises(RuntimeError, match=r"401|unauthorized|authentication"):
        digest_of(target)

    async def listed() -> list[str]:
        keychain = StaticKeychain(Credential(USER, PASSWORD))
        async with RegistryClient(keychain, FAST_RETRIES) as authed:
            return await authed.list_tags(ref(target))

    assert asyncio.run(listed()) == ["v1"]


# ---------------------------------------------------------------------- concurrency


async def test_concurrent_identical_pushes(
    embedded: EmbeddedRegistry, repo: Callable[[str], str]
) -> None:
    name = repo("race")
    layer = os.urandom(1 << 20)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": descriptor(mt.OCI_CONFIG, EMPTY_CONFIG),
            "layers": [descriptor(mt.OCI_LAYER, layer)],
        }
    ).encode()
    open_uploads = set((embedded.root / "uploads").iterdir())  # earlier tests left some open
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=f"http://{embedded.host}", limits=limits) as http:

        async def upload(data: bytes) -> int:
            started = await http.post(f"/v2/{name}/blobs/uploads/")
            assert started.status_code == 202
            done = await http.put(
                started.headers["location"], params={"digest": sha256(data)}, content=data
            )
            return done.status_code

        statuses = await asyncio.gather(*(upload(layer) for _ in range(20)))
        assert statuses == [201] * 20
        assert await upload(EMPTY_CONFIG) == 201

        async def put() -> int:
            response = await http.put(
                f"/v2/{name}/manifests/latest",
                content=manifest,
                headers={"Content-Type": mt.OCI_MANIFEST},
            )
            return response.status_code

        assert await asyncio.gather(*(put() for _ in range(20))) == [201] * 20
        response = await http.get(f"/v2/{name}/manifests/latest")
        assert response.content == manifest
        response = await http.get(f"/v2/{name}/blobs/{sha256(layer)}")
        assert response.content == layer
    assert set((embedded.root / "uploads").iterdir()) == open_uploads
    assert list((embedded.root / "tmp").iterdir()) == []


# ---------------------------------------------------------------------- the process


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_stops_cleanly_on_signals(
    tmp_path: Path, request: pytest.FixtureRequest, sig: int, status: int
) -> None:
    server = start_embedded(tmp_path / "root", request.addfinalizer)
    # An idle keep-alive connection must not hold the stop up.
    idle = socket.create_connection(("127.0.0.1", server.port))
    idle.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.recv(4096)
    started = time.monotonic()
    assert server.stop(sig) == status
    assert time.monotonic() - started < 5
    idle.close()
    assert "Traceback" not in server.output()


def test_startup_errors_are_one_clear_line(tmp_path: Path, embedded: EmbeddedRegistry) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad_htpasswd = tmp_path / "htpasswd"
    bad_htpasswd.write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    cases = [
        (["--address", "nonsense"], "invalid address 'nonsense'"),
        (["--address", "127.0.0.1:99999"], "invalid address"),
        (["--address", "no-such-host.invalid:5000"], "cannot listen on no-such-host.invalid:5000"),
        (["--address", embedded.host], "Address already in use"),
        (["--root", str(blocker / "root")], "cannot use"),
        (["--htpasswd", str(bad_htpasswd)], "does not have a bcrypt hash"),
    ]
    for args, message in cases:
        argv = [IMGCTL, "registry", "serve", "--root", str(tmp_path / "root"), "--address"]
        argv += ["127.0.0.1:0", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("imgctl: error: "), (args, result.stderr)
        assert message in lines[0], (args, lines)
