"""Writing to a catalog over its API: how `imgctl cip` records what it promoted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from imgctl.errors import ImgctlError

__all__ = ["record_images"]


def record_images(
    url: str,
    token: str | None,
    environment: str,
    images: Mapping[tuple[str, str], Sequence[str]],
) -> int:
    """Record (name, digest) -> tags as promoted to ``environment``; tags add to existing ones.

    The id is the digest, as the server records its own promotions. Returns how many images were
    written; raises ImgctlError naming the first image that could not be.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    written = 0
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as client:
        for (name, digest), tags in sorted(images.items()):
            try:
                # The entry of this repository: the digest may be another repository's too.
                current = client.get(
                    f"/images/{quote(digest, safe='@:')}",
                    params={"environment": environment, "name": name},
                )
                known: list[str] = []
                if current.status_code == 200:
                    body = current.json()
                    if isinstance(body, dict) and body.get("name") == name:
                        known = [t for t in body.get("tags") or [] if isinstance(t, str)]
                answer = client.put(
                    "/images",
                    json={
                        "id": digest,
                        "name": name,
                        "tags": sorted(set(known) | set(tags)),
                        "environment": environment,
                    },
                )
            except httpx.HTTPError as exc:
                raise ImgctlError(f"cannot reach the catalog at {url}: {exc}") from None
            if answer.status_code not in (200, 201):
                raise ImgctlError(
                    f"the catalog refused {name}@{digest} ({answer.status_code})",
                    hint="check --catalog-token (IMGCTL_CATALOG_TOKEN)"
                    if answer.status_code == 401
                    else None,
                )
            written += 1
    return written
