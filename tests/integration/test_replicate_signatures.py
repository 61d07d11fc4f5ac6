"""`imgctl cip replicate-signatures`: primary-registry signatures copied to the mirrors.

One source, a primary docker-registry and two mirrors (a docker-registry and the embedded
registry, which serves the referrers API), the primary and one mirror behind fault proxies that
count requests. Signatures are made by `imgctl cip --sign-key` (the .sig tag) and by hand (an
OCI 1.1 signature referrer); skopeo and tests/support/cosign.py read the mirrors back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..support.cosign import signature_layers, signature_manifest, signature_tag, tags_of
from ..support.embedded import start_embedded
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw
from .test_cip_signing import Key, Source, cip, make_key, write_manifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
COSIGN_SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY = b"{}"


async def push_referrer(host: str, repository: str, subject: str, payload: bytes) -> str:
    """An OCI 1.1 cosign signature referrer of ``subject`` (a made-up but well-formed layer)."""
    from imgctl.oci import Digest, Reference
    from imgctl.remote import ClientOptions, RegistryClient

    async with RegistryClient(options=ClientOptions(backoff=0.01)) as client:
        image = Reference.parse(f"{host}/{repository}@{subject}")
        head = await client.head_manifest(image)
        assert head is not None
        for blob in (EMPTY, payload):
            await client.push_blob(image, Digest.of(blob), blob, len(blob))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": COSIGN_SIG_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": str(Digest.of(EMPTY)),
                "size": len(EMPTY),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": str(Digest.of(payload)),
                    "size": len(payload),
                    "annotations": {
                        "dev.cosignproject.cosign/signature": base64.b64encode(b"x").decode()
                    },
                }
            ],
            "subject": {
                "mediaType": head.media_type,
                "digest": str(head.digest),
                "size": head.size,
            },
        }
        data = json.dumps(manifest).encode()
        digest = Digest.of(data)
        await client.put_manifest(image.with_digest(digest), data, OCI_MANIFEST)
        return str(digest)


def listings(proxy: FaultProxy, since: int = 0) -> dict[str, int]:
    """GET /v2/<repo>/tags/list requests per repository in the proxy's log after ``since``."""
    counts: dict[str, int] = {}
    for method, path, _ in proxy.log[since:]:
        if method == "GET" and "/tags/list" in path:
            repository = path.split("/v2/", 1)[1].split("/tags/list", 1)[0]
            counts[repository] = counts.get(repository, 0) + 1
    return counts


def test_replication_dry_run_confirm_and_idempotence(
    registries: Callable[..., Registry],
    layouts: Callable[..., Any],
    proxy_for: Callable[[Registry], FaultProxy],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    from ..support.skopeo import push_layout

    staging = registries()
    digests = {}
    for number, image in enumerate(("app-a", "app-b", "app-c")):
        built = layouts(tag="v1", platforms=None, layers=1, layer_size=5_000 + number)
        push_layout(built.oci_ref, f"{staging.host}/staging/{image}:v1")
        digests[image] = built.digest
    source = Source(staging, digests)
    primary, mirror = registries(), registries()
    primary_proxy, mirror_proxy = proxy_for(primary), proxy_for(mirror)
    embedded = start_embedded(tmp_path / "embedded", request.addfinalizer)
    key: Key = make_key(tmp_path / "keys", "release")
    destinations = [primary_proxy.host, mirror_proxy.host, embedded.host]

    # app-a and app-b promoted and signed in the primary; app-c promoted unsigned.
    signed = {image: {digests[image]: ["v1"]} for image in ("app-a", "app-b")}
    manifest = write_manifest(tmp_path / "signed.yaml", source.name, destinations, signed)
    first = cip("--manifest", str(manifest), "--confirm", "--sign-key", str(key.private))
    assert first.returncode == 0, first.stderr
    everything = {image: {digests[image]: ["v1"]} for image in digests}
    manifest = write_manifest(tmp_path / "all.yaml", source.name, destinations, everything)
    second = cip("--manifest", str(manifest), "--confirm")
    assert second.returncode == 0, second.stderr
    referrer = asyncio.run(
        push_referrer(primary.host, "app-b", digests["app-b"], b'{"made": "by hand"}')
    )
    for image in digests:
        assert signature_manifest(mirror.host, image, digests[image]) is None

    replicate = ["replicate-signatures", "--manifest", str(manifest), "--retries", "0"]
    dry = cip(*replicate)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(
        "dry run (add --confirm to copy): 3 digest(s) with mirrors, 2 signed in their primary; "
        "6 to copy, 0 already there, 0 failed; "
    ), dry.stdout
    sig_a, sig_b = signature_tag(digests["app-a"]), signature_tag(digests["app-b"])
    p, m, e = primary_proxy.host, mirror_proxy.host, embedded.host
    expected = {
        f"  copy      {p}/app-a:{sig_a} -> {m}/app-a:{sig_a}",
        f"  copy      {p}/app-a:{sig_a} -> {e}/app-a:{sig_a}",
        f"  copy      {p}/app-b:{sig_b} -> {m}/app-b:{sig_b}",
        f"  copy      {p}/app-b:{sig_b} -> {e}/app-b:{sig_b}",
        f"  copy      {p}/app-b@{referrer} -> {m}/app-b@{referrer}",
        f"  copy      {p}/app-b@{referrer} -> {e}/app-b@{referrer}",
    }
    assert set(dry.stdout.splitlines()[1:]) == expected
    assert tags_of(mirror.host, "app-a") == ["v1"]  # a dry run writes nothing

    # One mirror refuses app-a's signature: that copy fails, the others are made.
    mirror_proxy.fail(500, 1_000, method="PUT", path=rf"/v2/app-a/manifests/{sig_a}$")
    broken = cip(*replicate, "--confirm")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    [failure] = broken.stderr.splitlines()
    assert failure.startswith(
        f"failed    {primary_proxy.host}/app-a:{sig_a} -> {mirror_proxy.host}/app-a:{sig_a}: "
    )
    mirror_proxy.faults.clear()

    done = cip(*replicate, "--confirm", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["confirm"] is True
    assert report["summary"] | {"listings": 0, "requests": 0} == {
        "groups": 3,
        "unsigned": 1,
        "copy": 0,
        "copied": 1,
        "skipped": 5,
        "failed": 0,
        "listings": 0,
        "requests": 0,
    }
    [copied] = [c for c in report["copies"] if c["status"] == "copied"]
    assert copied["destination"] == f"{mirror_proxy.host}/app-a:{sig_a}"

    # The mirrors hold what the primary holds, byte for byte, and it verifies there.
    for host in (mirror.host, embedded.host):
        for image in ("app-a", "app-b"):
            digest = digests[image]
            assert signature_manifest(host, image, digest) == signature_manifest(
                primary.host, image, digest
            )
            [layer] = signature_layers(host, image, digest)
            assert layer.signed_by(key.key)
            assert layer.docker_reference == f"{primary_proxy.host}/{image}"
        raw = inspect_raw(f"{host}/app-b@{referrer}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == referrer
        assert signature_manifest(host, "app-c", digests["app-c"]) is None
    assert digest_of(f"{embedded.host}/app-c:v1") == digests["app-c"]

    # Idempotent: nothing to copy, and each repository's tags listed exactly once.
    marks = len(primary_proxy.log), len(mirror_proxy.log)
    again = cip(*replicate, "--confirm", "-o", "json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)["summary"]
    assert (summary["copied"], summary["skipped"], summary["failed"]) == (0, 6, 0)
    assert listings(primary_proxy, marks[0]) == {"app-a": 1, "app-b": 1, "app-c": 1}
    # Only the mirrors of signed digests are listed (app-c's primary holds no signature).
    assert listings(mirror_proxy, marks[1]) == {"app-a": 1, "app-b": 1}
    assert summary["listings"] == 7  # 3 primary, 2 + 2 mirror repositories
    # Every write was skipped: no PUT, POST or PATCH reached the mirror.
    assert {m for m, _, _ in mirror_proxy.log[marks[1] :]} <= {"GET", "HEAD"}
