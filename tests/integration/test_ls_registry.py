"""``imgctl ls REGISTRY``: a registry's repositories from its catalog, every page of it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from ..conftest import IMGCTL, PushedImage
from ..support.proxy import FaultProxy
from ..support.registry import Registry


def _imgctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGCTL, *args], capture_output=True, text=True, timeout=60)


def test_ls_a_registry_lists_its_repositories_across_pages(
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
) -> None:
    registry = registries()
    names = [f"team/app{i}" for i in range(5)]
    for name in names:
        push_image(registry, repository=name, layers=1, layer_size=100)
    # docker-registry 2.8 ignores n; the proxy pages the catalog as distribution 3 does, two
    # names a page at most, so the listing must follow Link headers to see all five.
    proxy = proxy_for(registry)
    proxy.paginate_catalog = True
    proxy.tag_page_cap = 2

    listed = _imgctl("ls", proxy.host, "--page-size", "2")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == names
    catalog_pages = [path for method, path, _ in proxy.log if "/v2/_catalog" in path]
    assert len(catalog_pages) >= 3, catalog_pages

    full = _imgctl("ls", f"{proxy.host}/", "--full-ref")
    assert full.stdout.split() == [f"{proxy.host}/{name}" for name in names]

    document = json.loads(_imgctl("ls", proxy.host, "-o", "json").stdout)
    assert document == {"registry": proxy.host, "repositories": names}


def test_ls_a_repository_still_lists_tags_and_a_hub_name_is_not_a_registry(
    registry: Registry, push_image: Callable[..., PushedImage], repo: Callable[[str], str]
) -> None:
    name = repo("tags")
    push_image(registry, repository=name, tag="v1", layers=1, layer_size=100)
    tags = _imgctl("ls", f"{registry.host}/{name}")
    assert tags.stdout.split() == ["v1"]
    # REPO:TAG without a registry is Docker Hub's, with a tag: refused as before, not taken
    # for a host "nginx" on port "latest".
    refused = _imgctl("ls", "nginx:latest")
    assert refused.returncode != 0
    assert "names a tag or digest where a repository was expected" in refused.stderr


def test_ls_help_names_both_forms() -> None:
    shown = _imgctl("ls", "--help")
    assert shown.returncode == 0
    assert "REGISTRY/REPO | REGISTRY" in shown.stdout
    assert "/v2/_catalog" in shown.stdout
