"""``copy --platform``: one platform's manifest, by its own digest, against real registries.

skopeo is the referee: it reads what the destination holds (``inspect --raw``) and its digest.
Semantics follow ``crane copy --platform``: the destination gets the platform's manifest, and
the tag points at that manifest, not at the index.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from imgctl.errors import UsageError
from imgctl.oci import Digest, Index, Reference, parse_manifest
from imgctl.oci.platform import parse_platform
from imgctl.remote import CopyOptions, RegistryClient, copy_image

from ..conftest import IMGCTL, PushedImage
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw


def ref(value: str) -> Reference:
    return Reference.parse(value)


def child_digest(image: PushedImage, os_arch: str) -> str:
    """The digest skopeo sees for one platform of the source index."""
    index = parse_manifest(inspect_raw(image.ref))
    assert isinstance(index, Index)
    [digest] = [str(d.digest) for d in index.manifests if str(d.platform) == os_arch]
    return digest


@pytest.mark.parametrize("os_arch", ["linux/amd64", "linux/arm64"])
async def test_platform_of_an_index_copies_that_manifest_and_tags_it(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    os_arch: str,
) -> None:
    image = push_image(registry, layers=2, layer_size=5_000)
    expected = child_digest(image, os_arch)
    assert expected != image.digest
    name = repo("plat")
    destination = f"{registry2.host}/{name}:v1"
    options = CopyOptions(platform=parse_platform(os_arch))
    result = await copy_image(client, ref(image.ref), ref(destination), options)
    assert result.status == "copied"
    assert str(result.digest) == expected
    assert str(result.platform) == os_arch
    assert result.as_dict()["platform"] == os_arch
    # One manifest and its own blobs (2 layers + config), none of the other platform's.
    assert result.manifests_pushed == 1
    assert result.blobs_copied == 3
    assert digest_of(destination) == expected
    raw = inspect_raw(destination)
    assert raw == inspect_raw(f"{image.ref.rsplit(':', 1)[0]}@{expected}")
    assert Digest.of(raw) == Digest.parse(expected)
    again = await copy_image(client, ref(image.ref), ref(destination), options)
    assert again.status == "unchanged"
    assert str(again.digest) == expected


async def test_platform_missing_from_the_index_lists_what_it_has(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1_000)
    name = repo("plat")
    for wanted in ("linux/s390x", "windows/amd64", "linux/arm64/v8"):
        with pytest.raises(UsageError) as caught:
            await copy_image(
                client,
                ref(image.ref),
                ref(f"{registry2.host}/{name}:v1"),
                CopyOptions(platform=parse_platform(wanted)),
            )
        message = str(caught.value)
        assert f"no platform {wanted}" in message
        assert "linux/amd64, linux/arm64" in message
    assert not registry2.has_tag(name, "v1")


async def test_single_manifest_is_copied_only_when_its_config_is_that_platform(
    client: RegistryClient,
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1_000, platforms=None)
    name = repo("single")
    for wanted in ("linux/arm64", "windows/amd64", "linux/amd64/v2"):
        with pytest.raises(UsageError) as caught:
            await copy_image(
                client,
                ref(image.ref),
                ref(f"{registry2.host}/{name}:v1"),
                CopyOptions(platform=parse_platform(wanted)),
            )
        assert f"single manifest for linux/amd64, not {wanted}" in str(caught.value)
    assert not registry2.has_tag(name, "v1")
    result = await copy_image(
        client,
        ref(image.ref),
        ref(f"{registry2.host}/{name}:v1"),
        CopyOptions(platform=parse_platform("linux/amd64")),
    )
    assert result.status == "copied"
    assert str(result.digest) == image.digest
    assert digest_of(f"{registry2.host}/{name}:v1") == image.digest


def imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, timeout=300)


def test_cli_platform_json_reports_platform_and_copied_digest(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1_000)
    expected = child_digest(image, "linux/arm64")
    destination = f"{registry2.host}/{repo('cli')}"
    done = imgctl("copy", "--platform", "linux/arm64", image.ref, destination, "-o", "json")
    assert done.returncode == 0, done.stderr
    [summary] = json.loads(done.stdout)
    assert summary["platform"] == "linux/arm64"
    assert summary["digest"] == expected
    assert summary["status"] == "copied"
    assert digest_of(f"{destination}:v1") == expected
    missing = imgctl("copy", "--platform", "linux/ppc64le", image.ref, destination)
    assert missing.returncode == 1
    assert "no platform linux/ppc64le; it has: linux/amd64, linux/arm64" in missing.stderr


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("linux", "1 part(s)"),
        ("linux/", "empty architecture"),
        ("a/b/c/d", "4 part(s)"),
        ("linux/amd 64", "not a platform name"),
    ],
)
def test_cli_refuses_a_malformed_platform_before_any_request(value: str, problem: str) -> None:
    # An unroutable registry: the parse error must come first, with no network attempt.
    done = imgctl("copy", "--platform", value, "127.0.0.1:9/a:v1", "127.0.0.1:9/b")
    assert done.returncode == 2  # a usage error (README's exit codes)
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("imgctl: error: --platform: ")
    assert problem in line
