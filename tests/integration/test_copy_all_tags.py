"""``imgctl copy --all-tags SRC_REPO DST_REPO``: every tag, digests unchanged, one result each."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable

from imgctl.oci import Digest, Reference
from imgctl.remote import RegistryClient

from ..conftest import IMGCTL, PushedImage
from ..support.registry import Registry, add_tags
from ..support.skopeo import digest_of
from .test_copy_referrers import push_cosign_tag, signature_payload


def _imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, timeout=120)


async def _sign(ref: str, digest: str) -> str:
    """A cosign-style .sig tag for ``digest`` in the repository of ``ref``: its tag."""
    repository = Reference.parse(ref)
    subject = Digest.parse(digest)
    async with RegistryClient() as client:
        await push_cosign_tag(
            client, repository, subject, ".sig", [signature_payload(repository, subject)]
        )
    return subject.tag_form + ".sig"


def test_all_tags_copies_every_tag_with_its_digest_and_one_result_each(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    source = f"{registry.host}/{repo('many')}"
    v1 = push_image(registry, repository=source.split("/", 1)[1], tag="v1", layers=1)
    v2 = push_image(registry, repository=source.split("/", 1)[1], tag="v2", layers=1)
    asyncio.run(add_tags(v1.ref, ["latest", "1"]))
    signature_tag = asyncio.run(_sign(v1.ref, v1.digest))
    destination = f"{registry2.host}/{repo('mirror')}"

    copied = _imgctl("copy", "--all-tags", source, destination, "-o", "json")
    assert copied.returncode == 0, copied.stderr
    results = json.loads(copied.stdout)
    # One result per tag; the signature tag is not one of them: it travels with v1's digest.
    assert sorted(r["destination"] for r in results) == [
        f"{destination}:{tag}" for tag in ["1", "latest", "v1", "v2"]
    ]
    assert {r["status"] for r in results} == {"copied"}
    expected = {"1": v1.digest, "latest": v1.digest, "v1": v1.digest, "v2": v2.digest}
    for tag, digest in expected.items():
        assert digest_of(f"{destination}:{tag}") == digest
    assert registry2.has_tag(destination.split("/", 1)[1], signature_tag)

    # Run again: nothing moves, every tag reported unchanged.
    again = json.loads(_imgctl("copy", "-a", source, destination, "-o", "json").stdout)
    assert {r["status"] for r in again} == {"unchanged"}
    assert len(again) == 4


def test_all_tags_with_referrers_none_copies_signature_tags_as_tags(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    name = repo("plain")
    v1 = push_image(registry, repository=name, tag="v1", layers=1)
    signature_tag = asyncio.run(_sign(v1.ref, v1.digest))
    destination = f"{registry2.host}/{repo('plain-mirror')}"
    copied = _imgctl(
        "copy", "--all-tags", "--referrers", "none", f"{registry.host}/{name}", destination
    )
    assert copied.returncode == 0, copied.stderr
    assert registry2.has_tag(destination.split("/", 1)[1], signature_tag)
    assert f"{destination}:{signature_tag}" in copied.stdout


def test_all_tags_refuses_a_tag_or_digest_and_from_file(registry: Registry) -> None:
    for source, destination in [
        (f"{registry.host}/a:v1", f"{registry.host}/b"),
        (f"{registry.host}/a", f"{registry.host}/b:v1"),
        (f"{registry.host}/a@sha256:{'0' * 64}", f"{registry.host}/b"),
    ]:
        refused = _imgctl("copy", "--all-tags", source, destination)
        assert refused.returncode == 2, refused.stderr
        assert "--all-tags copies whole repositories" in refused.stderr
    both = _imgctl("copy", "--all-tags", "--from-file", "-")
    assert both.returncode == 2
    assert "not --from-file" in both.stderr


def test_all_tags_of_a_repository_without_tags_fails(
    registry: Registry, registry2: Registry, repo: Callable[[str], str]
) -> None:
    empty = _imgctl("copy", "--all-tags", f"{registry.host}/{repo('none')}", registry2.host + "/x")
    assert empty.returncode == 1
    assert "imgctl: error:" in empty.stderr
