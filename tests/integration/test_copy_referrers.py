"""Referrers travel with the image: cosign's tag schema and OCI 1.1 referrers, both directions.

Sources and destinations are real registries: docker-registry 2.8 (no referrers API: only the
``sha256-<hex>`` fallback index and cosign's ``.sig``/``.att``/``.sbom`` tags) and the embedded
registry (``imgctl registry serve``, which serves the referrers API). Signature material is
pushed the way cosign lays it out (INTEROP.md section 10); what arrives is read back with skopeo
(``inspect --raw``) and with plain HTTP GETs, never with imgctl's client.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgctl.oci import Digest, Reference
from imgctl.oci import mediatypes as mt
from imgctl.oci.manifest import Descriptor
from imgctl.remote import CopyOptions, RegistryClient, copy_image, copy_images

from ..conftest import FAST_RETRIES, IMGCTL, PushedImage
from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw, push_layout

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SPDX = "application/spdx+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
EMPTY = b"{}"


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[EmbeddedRegistry]:
    server = start_embedded(tmp_path_factory.mktemp("embedded") / "root", request.addfinalizer)
    yield server
    assert "Traceback" not in server.output()


def ref(value: str) -> Reference:
    return Reference.parse(value)


def get(host: str, path: str, accept: str = mt.MANIFEST_ACCEPT, **params: str) -> httpx.Response:
    """A plain HTTP GET (the referee), independent of imgctl's client."""
    return httpx.get(
        f"http://{host}{path}", headers={"Accept": accept}, params=params or None, timeout=30
    )


def listed(host: str, repository: str, subject: Digest) -> set[str]:
    """Referrers of ``subject`` as the registry lists them: the API, else the fallback index."""
    response = get(host, f"/v2/{repository}/referrers/{subject}", mt.OCI_INDEX)
    if response.status_code == 404:
        response = get(host, f"/v2/{repository}/manifests/{subject.tag_form}")
        if response.status_code == 404:
            return set()
    assert response.status_code == 200, response.text
    return {d["digest"] for d in response.json()["manifests"]}


def signature_payload(reference: Reference, digest: Digest) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference.name},
                "image": {"docker-manifest-digest": str(digest)},
                "type": "cosign container image signature",
            },
            "optional": {"nonce": os.urandom(8).hex()},
        }
    ).encode()


async def push_blob(client: RegistryClient, target: Reference, data: bytes) -> Digest:
    digest = Digest.of(data)
    await client.push_blob(target, digest, data, len(data))
    return digest


async def push_cosign_tag(
    client: RegistryClient,
    repository: Reference,
    subject: Digest,
    suffix: str,
    layers: list[bytes],
    media_type: str = SIMPLESIGNING,
) -> bytes:
    """A cosign-style manifest under ``sha256-<hex><suffix>``: one layer per payload, a config
    with one diff_id and history entry per layer (as go-containerregistry writes them)."""
    descriptors = []
    for data in layers:
        digest = await push_blob(client, repository, data)
        descriptors.append(
            {
                "mediaType": media_type,
                "size": len(data),
                "digest": str(digest),
                "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(os.urandom(70)).decode()},
            }
        )
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
            "config": {},
        }
    ).encode()
    config_digest = await push_blob(client, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "size": len(config),
                "digest": str(config_digest),
            },
            "layers": descriptors,
        }
    ).encode()
    await client.put_manifest(
        repository.with_tag(subject.tag_form + suffix), manifest, mt.OCI_MANIFEST
    )
    return manifest


async def attach(
    client: RegistryClient,
    repository: Reference,
    subject: Descriptor,
    artifact_type: str,
    payload: bytes | None = None,
) -> tuple[Digest, bytes]:
    """An OCI 1.1 referrer of ``subject`` (empty config, one layer), pushed by digest; on a
    registry without the referrers API the push also writes the ``sha256-<hex>`` index."""
    payload = payload if payload is not None else os.urandom(200)
    await push_blob(client, repository, EMPTY)
    layer = await push_blob(client, repository, payload)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(EMPTY)), "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": str(layer), "size": len(payload)}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": str(subject.digest),
                "size": subject.size,
            },
        }
    ).encode()
    digest = Digest.of(manifest)
    await client.put_manifest(repository.with_digest(digest), manifest, mt.OCI_MANIFEST)
    return digest, manifest


async def subject_of(client: RegistryClient, reference: Reference) -> Descriptor:
    found = await client.head_manifest(reference)
    assert found is not None
    return found


def statuses(result: Any) -> dict[str, tuple[str, str]]:
    """Referrer label -> (kind, status) of a copy result."""
    return {r.label: (r.kind, r.status) for r in result.referrers}


# ---------------------------------------------------------------------- cosign's tag schema


async def test_sig_att_and_sbom_tags_travel_with_the_image_before_its_tag(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=1, layer_size=2_000)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    tag = digest.tag_form
    sig = await push_cosign_tag(client, source, digest, ".sig", [signature_payload(source, digest)])
    att = await push_cosign_tag(client, source, digest, ".att", [b'{"payloadType":"x"}'], DSSE)
    sbom = await push_cosign_tag(client, source, digest, ".sbom", [b'{"spdxVersion":"2.3"}'], SPDX)
    proxy = proxy_for(registry2)
    name = repo("signed")
    result = await copy_image(client, source, ref(f"{proxy.host}/{name}:v1"))
    assert result.status == "copied", result.error
    # skopeo reads each tag back byte for byte, and the image under its tag.
    for suffix, data in ((".sig", sig), (".att", att), (".sbom", sbom)):
        assert inspect_raw(f"{registry2.host}/{name}:{tag}{suffix}") == data
    assert digest_of(f"{registry2.host}/{name}:v1") == image.digest
    assert statuses(result) == {
        f"{tag}.sig": ("signature", "copied"),
        f"{tag}.att": ("attestation", "copied"),
        f"{tag}.sbom": ("sbom", "copied"),
    }
    summary = json.loads(json.dumps(result.as_dict()))  # what -o json prints
    assert {r["status"] for r in summary["referrers"]} == {"copied"}
    # Order: the image by digest, then its referrers, and the tag as the very last write.
    puts = [p for m, p, s in proxy.log if m == "PUT" and "/manifests/" in p]
    assert puts[-1] == f"/v2/{name}/manifests/v1"
    pinned = puts.index(f"/v2/{name}/manifests/{digest}")
    assert all(
        puts.index(f"/v2/{name}/manifests/{tag}{s}") > pinned for s in (".sig", ".att", ".sbom")
    )

    again = await copy_image(client, source, ref(f"{registry2.host}/{name}:v1"))
    assert again.status == "unchanged"
    assert {status for _, status in statuses(again).values()} == {"unchanged"}


async def test_children_of_an_index_bring_their_own_signatures(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1_000)
    source = ref(image.ref)
    index = json.loads(inspect_raw(image.ref))
    children = [Digest.parse(m["digest"]) for m in index["manifests"]]
    assert len(children) == 2
    sigs = {
        child: await push_cosign_tag(
            client, source, child, ".sig", [signature_payload(source, child)]
        )
        for child in children
    }
    amd64 = await subject_of(client, source.with_digest(children[0]))
    attestation, attestation_bytes = await attach(
        client, source, amd64, "application/vnd.in-toto+json"
    )
    name = repo("children")
    result = await copy_image(client, source, ref(f"{registry2.host}/{name}:v1"))
    assert result.status == "copied", result.error
    for child, data in sigs.items():
        assert inspect_raw(f"{registry2.host}/{name}:{child.tag_form}.sig") == data
    assert listed(registry2.host, name, children[0]) == {str(attestation)}
    assert get(registry2.host, f"/v2/{name}/manifests/{attestation}").content == attestation_bytes
    by_subject = {(str(r.subject), r.label, r.status) for r in result.referrers}
    assert by_subject == {
        (str(children[0]), f"{children[0].tag_form}.sig", "copied"),
        (str(children[1]), f"{children[1].tag_form}.sig", "copied"),
        (str(children[0]), str(attestation), "copied"),
    }


# ---------------------------------------------------------------------- OCI 1.1 referrers


@pytest.mark.parametrize("direction", ["embedded-to-distribution", "distribution-to-embedded"])
async def test_oci_referrers_and_their_referrers_cross_both_ways(
    client: RegistryClient,
    registry: Registry,
    embedded: EmbeddedRegistry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    direction: str,
) -> None:
    source_host, destination_host = (
        (embedded.host, registry.host)
        if direction == "embedded-to-distribution"
        else (registry.host, embedded.host)
    )
    image = push_image(embedded if source_host == embedded.host else registry, layers=1)
    source = ref(image.ref)
    subject = await subject_of(client, source)
    sbom, sbom_bytes = await attach(client, source, subject, SPDX)
    bundle, bundle_bytes = await attach(client, source, subject, BUNDLE)
    sbom_descriptor = await subject_of(client, source.with_digest(sbom))
    sbom_signature, signature_bytes = await attach(client, source, sbom_descriptor, BUNDLE)
    # Only the embedded source has an API to list them; docker-registry has the fallback tag.
    assert listed(source_host, source.repository, subject.digest) == {str(sbom), str(bundle)}

    name = repo("oci")
    result = await copy_image(client, source, ref(f"{destination_host}/{name}:v1"))
    assert result.status == "copied", result.error
    assert listed(destination_host, name, subject.digest) == {str(sbom), str(bundle)}
    assert listed(destination_host, name, sbom) == {str(sbom_signature)}
    for digest, data in (
        (sbom, sbom_bytes),
        (bundle, bundle_bytes),
        (sbom_signature, signature_bytes),
    ):
        assert get(destination_host, f"/v2/{name}/manifests/{digest}").content == data
    assert digest_of(f"{destination_host}/{name}:v1") == image.digest
    assert statuses(result) == {
        str(sbom): ("sbom", "copied"),
        str(bundle): ("signature", "copied"),
        str(sbom_signature): ("signature", "copied"),
    }

    again = await copy_image(client, source, ref(f"{destination_host}/{name}:v1"))
    assert {status for _, status in statuses(again).values()} == {"unchanged"}


async def test_embedded_registry_filters_by_artifact_type_and_signatures_selects(
    client: RegistryClient,
    embedded: EmbeddedRegistry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(embedded, layers=1, platforms=None)
    source = ref(image.ref)
    subject = await subject_of(client, source)
    sbom, _ = await attach(client, source, subject, SPDX)
    bundle, _ = await attach(client, source, subject, BUNDLE)
    cosign, _ = await attach(client, source, subject, COSIGN_SIG_ARTIFACT)
    path = f"/v2/{source.repository}/referrers/{subject.digest}"
    everything = get(embedded.host, path, mt.OCI_INDEX)
    assert everything.headers["content-type"] == mt.OCI_INDEX
    assert "oci-filters-applied" not in everything.headers
    assert {d["digest"] for d in everything.json()["manifests"]} == {
        str(sbom),
        str(bundle),
        str(cosign),
    }
    filtered = get(embedded.host, path, mt.OCI_INDEX, artifactType=BUNDLE)
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [str(bundle)]
    assert [d["artifactType"] for d in filtered.json()["manifests"]] == [BUNDLE]

    name = repo("sigs-only")
    options = CopyOptions(referrers="signatures")
    result = await copy_image(client, source, ref(f"{registry2.host}/{name}:v1"), options)
    assert result.status == "copied", result.error
    assert statuses(result) == {
        str(bundle): ("signature", "copied"),
        str(cosign): ("signature", "copied"),
    }
    assert listed(registry2.host, name, subject.digest) == {str(bundle), str(cosign)}
    assert get(registry2.host, f"/v2/{name}/manifests/{sbom}").status_code == 404


async def test_signatures_and_none_select_what_travels(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=1, platforms=None)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    tag = digest.tag_form
    async with RegistryClient(options=FAST_RETRIES) as client:
        for suffix, media_type in ((".sig", SIMPLESIGNING), (".att", DSSE), (".sbom", SPDX)):
            await push_cosign_tag(client, source, digest, suffix, [os.urandom(50)], media_type)
        subject = await subject_of(client, source)
        await attach(client, source, subject, SPDX)
        bundle, _ = await attach(client, source, subject, BUNDLE)

        signatures = repo("signatures")
        options = CopyOptions(referrers="signatures")
        result = await copy_image(client, source, ref(f"{registry2.host}/{signatures}:v1"), options)
    assert statuses(result) == {
        f"{tag}.sig": ("signature", "copied"),
        str(bundle): ("signature", "copied"),
    }
    assert registry2.has_tag(signatures, f"{tag}.sig")
    assert not registry2.has_tag(signatures, f"{tag}.att")
    assert not registry2.has_tag(signatures, f"{tag}.sbom")
    assert listed(registry2.host, signatures, digest) == {str(bundle)}

    proxy = proxy_for(registry)
    none = repo("none")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(
            client,
            ref(image.ref.replace(registry.host, proxy.host)),
            ref(f"{registry2.host}/{none}:v1"),
            CopyOptions(referrers="none"),
        )
    assert result.status == "copied"
    assert result.referrers == []
    assert registry2.has_tag(none, "v1")
    assert [t for t in ("sig", "att", "sbom") if registry2.has_tag(none, f"{tag}.{t}")] == []
    assert not registry2.has_tag(none, tag)
    # Nothing is even looked for: no tag listing, no referrers request.
    assert [p for m, p, s in proxy.log if "/tags/list" in p or "/referrers/" in p] == []


# ---------------------------------------------------------------------- merges and conflicts


async def test_an_existing_destination_signature_is_merged_never_replaced(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, platforms=None)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    tag = digest.tag_form
    name = repo("merge")
    destination = ref(f"{registry2.host}/{name}:v1")
    a, b, c = (signature_payload(destination, digest) for _ in range(3))
    await push_cosign_tag(client, source, digest, ".sig", [b, c])
    await push_cosign_tag(
        client, source, digest, ".sbom", [b'{"spdxVersion":"2.3","from":"source"}'], SPDX
    )
    # The destination holds the image (pushed by skopeo), signed by someone else already, and
    # carries its own SBOM.
    push_layout(image.built.oci_ref, str(destination))
    kept_sig = await push_cosign_tag(client, destination, digest, ".sig", [a, b])
    kept_sbom = await push_cosign_tag(
        client, destination, digest, ".sbom", [b'{"spdxVersion":"2.3","from":"mirror"}'], SPDX
    )

    result = await copy_image(client, source, destination)
    assert result.status == "unchanged", result.error
    merged = json.loads(inspect_raw(f"{registry2.host}/{name}:{tag}.sig"))
    assert [layer["digest"] for layer in merged["layers"]] == [str(Digest.of(x)) for x in (a, b, c)]
    old_layers = json.loads(kept_sig)["layers"]
    assert merged["layers"][:2] == old_layers  # the destination's layers stay first, unchanged
    assert SIGNATURE_ANNOTATION in merged["layers"][2]["annotations"]
    assert get(registry2.host, f"/v2/{name}/blobs/{Digest.of(c)}").content == c
    config = get(registry2.host, f"/v2/{name}/blobs/{merged['config']['digest']}").json()
    assert config["rootfs"]["diff_ids"] == [str(Digest.of(x)) for x in (a, b, c)]
    assert len(config["history"]) == 3
    assert inspect_raw(f"{registry2.host}/{name}:{tag}.sbom") == kept_sbom

    by_label = {r.label: r for r in result.referrers}
    assert by_label[f"{tag}.sig"].status == "merged"
    assert "appended 1 of the source's layers to the destination's 2" in (
        by_label[f"{tag}.sig"].reason or ""
    )
    assert by_label[f"{tag}.sbom"].status == "skipped"
    assert "kept it" in (by_label[f"{tag}.sbom"].reason or "")

    again = await copy_image(client, source, destination)
    assert statuses(again)[f"{tag}.sig"] == ("signature", "unchanged")
    assert (
        inspect_raw(f"{registry2.host}/{name}:{tag}.sig")
        == json.dumps(merged, separators=(",", ":")).encode()
    )


# ---------------------------------------------------------------------- failures


async def test_a_failed_referrer_fails_the_pair_and_leaves_the_tag_unwritten(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry, layers=1, platforms=None)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    tag = digest.tag_form
    async with RegistryClient(options=FAST_RETRIES) as client:
        await push_cosign_tag(client, source, digest, ".sig", [os.urandom(60)])
        await push_cosign_tag(client, source, digest, ".att", [os.urandom(60)], DSSE)
    proxy = proxy_for(registry2)
    name = repo("refused")
    proxy.fail(403, 100, method="PUT", path=rf"/manifests/{tag}\.sig$")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image_result(client, source, ref(f"{proxy.host}/{name}:v1"))
    assert result.status == "failed"
    message = str(result.error)
    assert f"copied {proxy.host}/{name}@{digest} but did not tag it" in message
    assert f"referrer {tag}.sig" in message
    assert "403" in message
    assert statuses(result) == {
        f"{tag}.sig": ("signature", "failed"),
        f"{tag}.att": ("attestation", "copied"),
    }
    # The image is complete by digest; its tag waits for its referrers.
    assert digest_of(f"{registry2.host}/{name}@{digest}") == image.digest
    assert not registry2.has_tag(name, "v1")
    assert registry2.has_tag(name, f"{tag}.att")

    proxy.faults.clear()
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image_result(client, source, ref(f"{proxy.host}/{name}:v1"))
    assert result.status == "copied", result.error
    assert statuses(result)[f"{tag}.sig"] == ("signature", "copied")
    assert registry2.has_tag(name, "v1")


async def copy_image_result(
    client: RegistryClient, source: Reference, destination: Reference
) -> Any:
    [result] = await copy_images(client, [(source, destination)])
    return result


async def test_referrers_are_followed_three_deep_and_absurd_counts_refused(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = push_image(registry, layers=1, platforms=None)
    source = ref(image.ref)
    chain = [await subject_of(client, source)]
    for _ in range(4):  # the image <- r1 <- r2 <- r3 <- r4
        digest, _ = await attach(client, source, chain[-1], BUNDLE)
        chain.append(await subject_of(client, source.with_digest(digest)))
    name = repo("deep")
    result = await copy_image(client, source, ref(f"{registry2.host}/{name}:v1"))
    assert result.status == "copied", result.error
    for subject, referrer in itertools.pairwise(chain[:4]):
        assert listed(registry2.host, name, subject.digest) == {str(referrer.digest)}
    assert listed(registry2.host, name, chain[3].digest) == set()  # r4 is a fourth level
    assert [r.digest for r in result.referrers] == [d.digest for d in chain[1:4]]

    from imgctl.remote import _referrers

    monkeypatch.setattr(_referrers, "MAX_PER_DIGEST", 2)
    subject = chain[0]
    for _ in range(2):  # three referrers of the image now
        await attach(client, source, subject, SPDX)
    refused = repo("refused")
    [result] = await copy_images(client, [(source, ref(f"{registry2.host}/{refused}:v1"))])
    assert result.status == "failed"
    message = str(result.error)
    assert f"did not write {registry2.host}/{refused}:v1" in message
    assert f"{source.name}@{subject.digest} has 3 referrers" in message
    assert "at most 2 per digest" in message
    assert "--referrers signatures" in message
    assert not registry2.has_tag(refused, "v1")
    assert listed(registry2.host, refused, subject.digest) == set()


# ---------------------------------------------------------------------- cost


async def test_an_image_without_referrers_costs_one_tag_listing_per_repository(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    shared = repo("plain")
    images = [
        push_image(registry, repository=shared, tag="a", layers=1, layer_size=1_000),
        push_image(registry, repository=shared, tag="b", layers=1, layer_size=1_000),
        push_image(registry, layers=1, layer_size=1_000),
    ]
    source_proxy, destination_proxy = proxy_for(registry), proxy_for(registry2)

    async def run(selection: str, into: str) -> list[tuple[str, str, int]]:
        pairs = [
            (
                ref(image.ref.replace(registry.host, source_proxy.host)),
                ref(f"{destination_proxy.host}/{into}-{n}"),
            )
            for n, image in enumerate(images)
        ]
        source_proxy.log.clear()
        destination_proxy.log.clear()
        async with RegistryClient(options=FAST_RETRIES) as client:
            # One blob at a time: how many blobs go before the self-mount probe stays the same.
            options = CopyOptions(
                image_concurrency=1,
                blob_concurrency=1,
                referrers=selection,  # type: ignore[arg-type]
            )
            results = await copy_images(client, pairs, options)
        assert [r.status for r in results] == ["copied"] * 3
        assert all(r.referrers == [] for r in results)
        return [*source_proxy.log, *destination_proxy.log]

    none = await run("none", repo("cost-none"))
    everything = await run("all", repo("cost-all"))
    extra = len(everything) - len(none)
    listings = [p for m, p, s in everything if "/tags/list" in p]
    probes = [p for m, p, s in everything if "/referrers/" in p]
    # One listing per source repository (two here, for three images), one probe per registry,
    # and nothing else: no request reaches the destination for referrers that do not exist.
    assert len(listings) == 2
    assert len(probes) == 1
    assert extra == len(listings) + len(probes)
    assert extra - len(probes) <= len(images)  # at most one extra request per image


# ---------------------------------------------------------------------- the command line


def imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, env=env, timeout=300)


async def test_copy_cli_reports_referrers_in_json_and_text(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, platforms=None)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    await push_cosign_tag(client, source, digest, ".sig", [signature_payload(source, digest)])
    await push_cosign_tag(client, source, digest, ".sbom", [b'{"spdxVersion":"2.3"}'], SPDX)
    name = repo("cli")
    done = imgctl(
        "copy", "--referrers", "signatures", image.ref, f"{registry2.host}/{name}", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    [summary] = json.loads(done.stdout)
    assert summary["referrers"] == [
        {
            "subject": image.digest,
            "tag": f"{digest.tag_form}.sig",
            "digest": digest_of(f"{image.ref.rsplit(':', 1)[0]}:{digest.tag_form}.sig"),
            "kind": "signature",
            "artifactType": mt.OCI_CONFIG,
            "status": "copied",
            "reason": None,
        }
    ]
    assert registry2.has_tag(name, f"{digest.tag_form}.sig")
    assert not registry2.has_tag(name, f"{digest.tag_form}.sbom")
    text = imgctl("copy", image.ref, f"{registry2.host}/{name}")
    assert text.returncode == 0, text.stderr
    assert f"referrer copied    {digest.tag_form}.sbom (sbom)" in text.stdout
    assert "referrers already there: 1" in text.stdout
    bad = imgctl("copy", "--referrers", "some", image.ref, f"{registry2.host}/{name}")
    assert bad.returncode == 2
    assert "'some' is not one of" in bad.stderr


async def test_cip_plan_lists_the_referrers_it_would_copy_and_confirm_copies_them(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    staging = f"staging-{os.urandom(4).hex()}"
    image = push_image(registry, repository=f"{staging}/app", layers=1, platforms=None)
    source = ref(image.ref)
    digest = Digest.parse(image.digest)
    tag = digest.tag_form
    await push_cosign_tag(client, source, digest, ".sig", [signature_payload(source, digest)])
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        json.dumps(
            {
                "registries": [
                    {"name": f"{registry.host}/{staging}", "src": True},
                    {"name": f"{registry2.host}/{staging}-prod"},
                ],
                "images": [{"name": "app", "dmap": {image.digest: ["v1"]}}],
            }
        )
    )
    cip = ("cip", "--manifest", str(manifest), "--rate-limit", "2000")
    dry = imgctl(*cip, "-o", "json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    [edge] = plan["edges"]
    assert edge["action"] == "copy"
    assert [(r["tag"], r["kind"], r["action"]) for r in edge["referrers"]] == [
        (f"{tag}.sig", "signature", "copy")
    ]
    assert plan["summary"]["referrers"] == 1
    text = imgctl(*cip)
    assert f"    referrer copy  {tag}.sig (signature)" in text.stdout
    assert not registry2.has_tag(f"{staging}-prod/app", f"{tag}.sig")  # a dry run writes nothing

    done = imgctl(*cip, "--confirm")
    assert done.returncode == 0, done.stderr
    destination = f"{registry2.host}/{staging}-prod/app"
    assert inspect_raw(f"{destination}:{tag}.sig") == inspect_raw(
        f"{image.ref.rsplit(':', 1)[0]}:{tag}.sig"
    )
    assert digest_of(f"{destination}:v1") == image.digest

    # Signed again at the source after the promotion: the present edge has work again.
    await push_cosign_tag(
        client, source, digest, ".att", [b'{"payloadType":"application/vnd.in-toto+json"}'], DSSE
    )
    again = imgctl(*cip, "-o", "json")
    [edge] = json.loads(again.stdout)["edges"]
    assert edge["action"] == "present"
    assert {r["tag"]: r["action"] for r in edge["referrers"]} == {
        f"{tag}.sig": "present",
        f"{tag}.att": "copy",
    }
    confirmed = imgctl(*cip, "--confirm", "-o", "json")
    assert confirmed.returncode == 0, confirmed.stderr
    [outcome] = json.loads(confirmed.stdout)["results"]
    assert outcome["ok"] is True
    assert registry2.has_tag(f"{staging}-prod/app", f"{tag}.att")
    final = json.loads(imgctl(*cip, "-o", "json").stdout)
    assert final["summary"]["referrers"] == 0
    assert final["summary"]["present"] == 1
