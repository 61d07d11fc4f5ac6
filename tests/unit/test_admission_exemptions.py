"""Exempt image prefixes of the admission webhook match whole hosts and whole path segments.

Issue 15, item 7: ``registry.k8s.io`` exempted ``registry.k8s.io:evil/x`` (a string that is not
even a valid reference) because the prefix was compared with the image as written and stopped at
``:`` or ``@`` as well as ``/``. A prefix is now a registry (host and port) and an optional
repository path, normalised like an image name, and an image is exempt only if its canonical
name has that registry and starts with those path segments. These tests extend
test_admission.py's test_exempt_prefix_stops_at_a_boundary to the whole class.
"""

from __future__ import annotations

from typing import Any

import pytest

from imgctl.catalog.admission import Exemptions, review
from imgctl.errors import ImgctlError, UsageError
from imgctl.oci.reference import Reference

DIGEST = "sha256:" + "d" * 64
UID = "3a1c1f6e-exemptions"


def _reference(image: str) -> Reference | None:
    try:
        return Reference.parse(image)
    except ImgctlError:
        return None


def exempt(prefix: str, image: str) -> bool:
    """Whether ``image`` falls under ``prefix``, as the webhook decides it."""
    return Exemptions(image_prefixes=(prefix,)).prefix_for(image, _reference(image)) is not None


EXEMPT = [
    # A registry: every repository on that host (and port), whatever the host's case.
    ("registry.k8s.io", "registry.k8s.io/pause:3.9"),
    ("registry.k8s.io", "registry.k8s.io/etcd/sub/deep@" + DIGEST),
    ("registry.k8s.io", "REGISTRY.K8S.IO/pause:3.9"),
    ("Registry.K8s.IO", "registry.k8s.io/pause:3.9"),
    # Trailing slashes of the configured prefix mean the same prefix.
    ("registry.k8s.io/", "registry.k8s.io/pause:3.9"),
    ("registry.k8s.io//", "registry.k8s.io/pause:3.9"),
    ("registry.example.com/team/", "registry.example.com/team/app:1"),
    # host/path: the repository itself and everything below it.
    ("registry.example.com/team", "registry.example.com/team/app:1"),
    ("registry.example.com/team", "registry.example.com/team/sub/app:1"),
    ("registry.example.com/team", "registry.example.com/team:1"),
    ("registry.example.com/team/app", "registry.example.com/team/app@" + DIGEST),
    # Ports are part of the registry.
    ("localhost:5000", "localhost:5000/app:1"),
    ("127.0.0.1:5000/team", "127.0.0.1:5000/team/app:1"),
    ("[::1]:5000", "[::1]:5000/app:1"),
    # Docker Hub: short names and the hub's aliases are normalised on both sides.
    ("docker.io/library", "nginx:1.25"),
    ("docker.io/library", "library/nginx@" + DIGEST),
    ("docker.io/library", "index.docker.io/library/nginx:1.25"),
    ("index.docker.io/library", "nginx:1.25"),
    ("registry-1.docker.io/library/", "docker.io/library/nginx"),
    ("docker.io/library/nginx", "nginx"),
    ("nginx", "nginx:1.25"),
    ("nginx", "docker.io/library/nginx@" + DIGEST),
    ("istio/proxyv2", "istio/proxyv2:1.22"),
    ("docker.io/istio", "istio/proxyv2:1.22"),
    ("docker.io", "busybox"),
    ("docker.io", "registry-1.docker.io/bitnami/redis:7"),
]

NOT_EXEMPT = [
    # Another host that starts with the same characters.
    ("registry.k8s.io", "registry.k8s.io.evil.com/pause:3.9"),
    ("registry.k8s.io", "registry.k8s.iox/pause:3.9"),
    ("registry.k8s.io/", "registry.k8s.io.evil.com/pause:3.9"),
    ("registry.k8s.io", "evil.com/registry.k8s.io/pause:3.9"),
    # Not a port: not a valid reference at all, so nothing to exempt (and denied).
    ("registry.k8s.io", "registry.k8s.io:evil/pause:3.9"),
    ("registry.k8s.io", "registry.k8s.io:evil"),
    # Another port of the same host is another registry.
    ("registry.k8s.io", "registry.k8s.io:5000/pause:3.9"),
    ("localhost:5000", "localhost:50000/app:1"),
    ("localhost:5000", "localhost/app:1"),
    ("localhost", "localhost:5000/app:1"),
    # Userinfo-like strings: '@' starts a digest, so these are Docker Hub names or invalid.
    ("registry.k8s.io", "registry.k8s.io@" + DIGEST),
    ("registry.k8s.io", "registry.k8s.io@evil.com/pause:3.9"),
    ("registry.k8s.io", "user:pass@registry.k8s.io/pause:3.9"),
    ("evil.com", "registry.k8s.io@evil.com/x"),
    # A path prefix ends at a segment.
    ("registry.example.com/team", "registry.example.com/teamx/app:1"),
    ("registry.example.com/team", "registry.example.com/team-evil/app:1"),
    ("registry.example.com/team", "registry.example.com/team.evil/app:1"),
    ("registry.example.com/team/", "registry.example.com/team_x/app:1"),
    ("registry.example.com/team", "registry.example.com/other/team/app:1"),
    ("registry.example.com/team/app", "registry.example.com/team/application:1"),
    # Docker Hub: a short name is docker.io/library/<name>, never another namespace.
    ("nginx", "nginx/evil:1"),
    ("nginx", "nginx-evil:1"),
    ("nginx", "nginxinc/nginx-unprivileged:1"),
    ("docker.io/library", "docker.io/libraryx/nginx:1"),
    ("docker.io/library", "istio/proxyv2:1.22"),
    ("docker.io", "docker.io.evil.com/x:1"),
    ("docker.io/istio", "istio:1"),
    # An invalid image is never exempt: it is denied as invalid.
    ("registry.k8s.io", "registry.k8s.io/Pause:3.9"),
    ("registry.k8s.io", " registry.k8s.io/pause:3.9"),
]


@pytest.mark.parametrize(("prefix", "image"), EXEMPT)
def test_exempt(prefix: str, image: str) -> None:
    assert exempt(prefix, image)


@pytest.mark.parametrize(("prefix", "image"), NOT_EXEMPT)
def test_not_exempt(prefix: str, image: str) -> None:
    assert not exempt(prefix, image)


def pod(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "shop",
            "object": {"spec": {"containers": [{"name": "c", "image": i} for i in images]}},
        },
    }


async def test_review_denies_what_only_looks_exempt() -> None:
    async def nothing_promoted(env: str, name: str, digest: str | None, tag: str | None) -> bool:
        return False

    exemptions = Exemptions(image_prefixes=("registry.k8s.io",))
    images = [
        "registry.k8s.io/pause:3.9",
        "registry.k8s.io:evil/x:1",
        "registry.k8s.io.evil.com/x:1",
        "registry.k8s.io@" + DIGEST,
    ]
    answer = (await review(pod(*images), "prod", nothing_promoted, exemptions))["response"]
    assert answer["allowed"] is False
    assert answer["warnings"] == [
        "imgctl: spec.containers[0].image 'registry.k8s.io/pause:3.9' not checked"
        " (exempt prefix 'registry.k8s.io')"
    ]
    message = answer["status"]["message"]
    assert message.startswith("imgctl denied 3 image(s) in prod:")
    for image in images[1:]:
        assert repr(image) in message


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("https://registry.k8s.io", "URL scheme"),
        ("registry.k8s.io/pause:3.9", "tag"),
        ("nginx:1.25", "tag"),
        ("registry.k8s.io/pause@" + DIGEST, "digest"),
        ("registry.k8s.io:evil", "not a valid registry"),
        ("registry.k8s.io:99999", "not a valid registry"),
        ("registry.example.com/Team", "not a valid repository path"),
        ("registry.example.com//team", "not a valid repository path"),
        ("registry.example.com/te am", "whitespace"),
        ("/", "empty"),
        ("user@registry.k8s.io", "digest"),
        ("Nginx", "not a valid repository path"),
    ],
)
def test_a_prefix_that_is_not_a_registry_or_repository_is_refused(
    prefix: str, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem) as raised:
        Exemptions(image_prefixes=(prefix,))
    assert repr(prefix) in str(raised.value)
    # From the environment, the error names the variable too.
    with pytest.raises(UsageError, match="IMGCTL_ADMISSION_EXEMPT_IMAGES") as raised:
        Exemptions.from_environment({"IMGCTL_ADMISSION_EXEMPT_IMAGES": f"registry.k8s.io,{prefix}"})
    assert raised.value.hint
