"""The snapshot formats ``kpromo cip --snapshot`` prints: images.yaml and CSV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml

from imgctl.errors import ManifestError
from imgctl.promotion.manifests._checks import DIGEST_RE, TAG_RE, image_name_problem

__all__ = ["snapshot_csv", "snapshot_yaml"]

_STR_TAG = "tag:yaml.org,2002:str"


def _snapshot_rows(
    images: Mapping[str, Mapping[str, Sequence[str]]],
) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    rows: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for name in sorted(images):
        dmap = images[name]
        if not dmap:
            continue  # an empty repository has nothing to list, and dmap cannot be empty
        problem = image_name_problem(name)
        if problem is not None:
            raise ManifestError(f"snapshot: invalid image name: {name} ({problem[0]})")
        digests: list[tuple[str, list[str]]] = []
        for digest in sorted(dmap):
            if not DIGEST_RE.fullmatch(digest):
                raise ManifestError(f"snapshot: invalid digest: {digest} (image {name!r})")
            tags = sorted(set(dmap[digest]))
            for tag in tags:
                if not TAG_RE.fullmatch(tag):
                    raise ManifestError(f"snapshot: invalid tag: {tag} (image {name!r})")
            digests.append((digest, tags))
        rows.append((name, digests))
    return rows


def _plain_or_quoted(name: str) -> str:
    # A name YAML would read as something else (null, true, 1.0) is quoted; names are
    # validated repository paths, so double quotes need no escapes.
    node = yaml.compose(name, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG and node.value == name:
        return name
    return f'"{name}"'


def snapshot_yaml(images: Mapping[str, Mapping[str, Sequence[str]]]) -> str:
    """The ``images.yaml`` form of ``{name: {digest: tags}}``, sorted by name, digest, tag."""
    lines: list[str] = []
    for name, digests in _snapshot_rows(images):
        lines.append(f"- name: {_plain_or_quoted(name)}")
        lines.append("  dmap:")
        for digest, tags in digests:
            quoted = ", ".join(f'"{tag}"' for tag in tags)
            lines.append(f'    "{digest}": [{quoted}]')
    if not lines:
        return "[]\n"
    return "\n".join(lines) + "\n"


def snapshot_csv(images: Mapping[str, Mapping[str, Sequence[str]]]) -> str:
    """``name@digest,name:tag`` per tag (``name@digest,-`` when tagless), no header, sorted."""
    lines: list[str] = []
    for name, digests in _snapshot_rows(images):
        for digest, tags in digests:
            pinned = f"{name}@{digest}"
            lines.extend(f"{pinned},{name}:{tag}" for tag in tags)
            if not tags:
                lines.append(f"{pinned},-")
    return "".join(f"{line}\n" for line in lines)
