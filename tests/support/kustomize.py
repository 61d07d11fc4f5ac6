"""Render deploy/'s kustomizations without kustomize: the subset of it deploy/ uses.

``resources`` (files, or directories holding a kustomization.yaml) and ``patches`` given by
``path`` as strategic-merge patches: a patch names its target by apiVersion, kind, name and
namespace; mappings merge key by key, lists of mappings with a ``name`` merge item by item (as
kustomize does for containers, volumes and ports), other lists and scalars replace, and a
document whose top level says ``$patch: delete`` removes its target. Anything else in a
kustomization is refused, so that an overlay using more of kustomize is not rendered wrongly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "patches"}


def identity(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    """What a patch and its target share: apiVersion, kind, name, namespace."""
    meta = doc.get("metadata") or {}
    return (doc["apiVersion"], doc["kind"], meta.get("name", ""), meta.get("namespace", ""))


def load_all(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def merge(base: Any, patch: Any) -> Any:
    """``patch`` merged into ``base`` (strategic merge, the subset described above)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        merged = list(base)
        index = {item["name"]: n for n, item in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = merge(merged[index[item["name"]]], item)
            else:
                merged.append(item)
        return merged
    return patch


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``directory``'s kustomization.yaml produces, in resource order."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer lacks: {unknown}")
    docs: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        docs += render(path) if path.is_dir() else load_all(path)
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise ValueError(f"{directory}: only patches given by path are rendered: {entry}")
        for patch in load_all(directory / entry["path"]):
            delete = patch.pop("$patch", None) == "delete"
            matches = [n for n, d in enumerate(docs) if identity(d) == identity(patch)]
            if len(matches) != 1:
                raise ValueError(f"{directory}: patch {identity(patch)} matches {len(matches)}")
            if delete:
                del docs[matches[0]]
            else:
                docs[matches[0]] = merge(docs[matches[0]], patch)
    return docs
