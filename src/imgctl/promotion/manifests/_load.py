"""Loading manifests: a plain file (first problem an error), an images file, a thin tree.

A thin tree is read as kpromo reads it; what imgctl's validation refuses in one entry is left
out with a ``ManifestWarning`` (an error under ``strict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgctl.errors import ManifestError
from imgctl.promotion.manifests._checks import (
    check_registries,
    finding_error,
    kept_images,
    refused_entries,
)
from imgctl.promotion.manifests._model import ImageEntry, Manifest, bulk
from imgctl.promotion.manifests._yaml import (
    MANIFEST_KEYS,
    THIN_KEYS,
    Document,
    parse_images,
    read_file,
    read_images,
    read_registries,
)

__all__ = [
    "IMAGES_FILE",
    "MANIFEST_FILE",
    "ManifestWarning",
    "ThinTree",
    "load_images",
    "load_manifest",
    "load_thin_manifests",
    "load_thin_tree",
]

MANIFEST_FILE = "promoter-manifest.yaml"
IMAGES_FILE = "images.yaml"


@dataclass(frozen=True, slots=True)
class ManifestWarning:
    """An entry of a thin tree that imgctl left out, and why; ``--strict`` makes it an error.

    ``message`` is the error it is under ``--strict`` (file, line, problem); ``skipped`` says
    what was left out; ``path`` is the file the message names (for an images file without its
    manifest, the missing manifest), ``line`` the entry's line when there is one.
    """

    path: str
    line: int | None
    message: str
    skipped: str

    def __str__(self) -> str:
        return f"{self.message}; {self.skipped}"

    def error(self) -> ManifestError:
        """The error this warning is under ``--strict``."""
        return ManifestError(self.message, path=self.path)


@dataclass(frozen=True, slots=True)
class ThinTree:
    """A thin tree as read: its manifests, without the entries the warnings name."""

    manifests: tuple[Manifest, ...]
    warnings: tuple[ManifestWarning, ...] = ()


class _Warnings:
    """Collects warnings, or (strict) raises the first as the error it stands for."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.found: list[ManifestWarning] = []

    def add(self, warning: ManifestWarning) -> None:
        if self.strict:
            raise warning.error()
        self.found.append(warning)


def load_manifest(path: Path) -> Manifest:
    """Read and validate a plain manifest (``registries`` and ``images`` in one file).

    Validated as kpromo validates plain manifests: the first problem is an error.
    """
    path = Path(path)
    doc = Document(str(path))
    root = doc.compose(read_file(path))
    if root is None:
        raise doc.fail("'registries' field cannot be empty", "the file is empty")
    fields = doc.fields(root, "a manifest", MANIFEST_KEYS)
    registries = read_registries(doc, fields.get("registries"))
    images = read_images(doc, fields.get("images"))
    check_registries(doc, registries)
    findings = refused_entries(images, registries)
    if findings:
        raise finding_error(doc, findings[0])
    return Manifest(registries, tuple(read.entry for read in images), str(path))


def load_images(path: Path) -> tuple[ImageEntry, ...]:
    """Read and validate an ``images.yaml`` (a list of images), such as a snapshot."""
    path = Path(path)
    doc = Document(str(path))
    images = parse_images(doc, read_file(path, "images file"))
    findings = refused_entries(images, ())
    if findings:
        raise finding_error(doc, findings[0])
    return tuple(read.entry for read in images)


_SKIPPED_IMAGE = "this image is skipped"
_SKIPPED_DIGEST = "this digest is skipped"


def _load_thin(manifest_path: Path, images_path: Path, warnings: _Warnings) -> Manifest:
    doc = Document(str(manifest_path))
    root = doc.compose(read_file(manifest_path))
    if root is None:
        raise doc.fail("'registries' field cannot be empty", "the file is empty")
    fields = doc.fields(root, "a thin manifest", THIN_KEYS)
    if "imagesPath" in fields:
        doc.text(fields["imagesPath"], "'imagesPath'")  # deprecated in kpromo: read, not used
    registries = read_registries(doc, fields.get("registries"))
    check_registries(doc, registries)
    images_doc = Document(str(images_path))
    images = parse_images(images_doc, read_file(images_path, "images file"))
    findings = refused_entries(images, registries)
    if findings and warnings.strict:
        raise finding_error(images_doc, findings[0])  # the first in kpromo's order of checks
    for finding in sorted(findings, key=lambda f: f.line):
        error = finding_error(images_doc, finding)
        skipped = _SKIPPED_IMAGE if finding.digest is None else _SKIPPED_DIGEST
        warnings.add(ManifestWarning(str(images_path), finding.line, str(error), skipped))
    return Manifest(registries, kept_images(images, findings), str(manifest_path), str(images_path))


def _misplaced_manifests(top: Path) -> None:
    if not top.is_dir():
        return
    for found in sorted(top.rglob(MANIFEST_FILE)):
        if found.parent.parent != top:
            raise ManifestError(f'unexpected manifest path "{found}"', path=str(found))
        if not found.is_file():
            raise ManifestError(f'"{found}" is not a regular file', path=str(found))


def _misplaced_images(top: Path, warnings: _Warnings) -> None:
    # kpromo never looks into images/ but for the file of each manifest: an images.yaml
    # elsewhere is not read, which is worth saying (someone expected it to be promoted).
    if not top.is_dir():
        return
    for found in sorted(top.rglob(IMAGES_FILE)):
        if found.parent.parent != top:
            message = f'unexpected images path "{found}"'
            warnings.add(ManifestWarning(str(found), None, message, "it is not read"))


def load_thin_tree(directory: Path, *, strict: bool = False) -> ThinTree:
    """Read a thin tree as kpromo does, leaving out (with a warning) what validation refuses.

    kpromo reads each ``manifests/<x>/promoter-manifest.yaml`` with its
    ``images/<x>/images.yaml``, and nothing else. An images file with no manifest is not
    promoted (a warning); an images file that is empty or only comments is no images; an entry
    imgctl's validation refuses (see ``refused_entries``) is left out with a warning naming file and
    line, and the rest of the tree is read. ``strict`` makes every warning an error.

    Errors either way: YAML that is not valid or is ambiguous (``_internal.strict_yaml``), a
    file of the wrong shape (unknown keys, wrong types), a manifest's registries (no source,
    two sources, a bad name), a manifest without its images file, a manifest at another depth,
    or no manifest at all.
    """
    with bulk():
        return _thin_tree(Path(directory), strict)


def _thin_tree(directory: Path, strict: bool) -> ThinTree:
    if not directory.is_dir():
        raise ManifestError(f"{directory}: no such directory", path=str(directory))
    manifests_dir = directory / "manifests"
    images_dir = directory / "images"
    warnings = _Warnings(strict)
    _misplaced_manifests(manifests_dir)

    names = sorted(p.parent.name for p in manifests_dir.glob(f"*/{MANIFEST_FILE}"))
    orphans = sorted(
        p.parent.name
        for p in images_dir.glob(f"*/{IMAGES_FILE}")
        if not (manifests_dir / p.parent.name / MANIFEST_FILE).exists()
    )
    if not names:
        raise ManifestError(
            f"no manifests found in dir: {directory}",
            path=str(directory),
            hint=f"expected manifests/<name>/{MANIFEST_FILE} and images/<name>/{IMAGES_FILE}",
        )
    for name in orphans:
        manifest_path = manifests_dir / name / MANIFEST_FILE
        images_path = images_dir / name / IMAGES_FILE
        message = f'corresponding file "{manifest_path}" does not exist'
        skipped = f'"{images_path}" is not promoted'
        warnings.add(ManifestWarning(str(manifest_path), None, message, skipped))
    _misplaced_images(images_dir, warnings)

    manifests: list[Manifest] = []
    for name in names:
        manifest_path = manifests_dir / name / MANIFEST_FILE
        images_path = images_dir / name / IMAGES_FILE
        if not images_path.exists():
            raise ManifestError(
                f'corresponding file "{images_path}" does not exist', path=str(images_path)
            )
        if not images_path.is_file():
            raise ManifestError(
                f'corresponding file "{images_path}" is not a regular file', path=str(images_path)
            )
        manifests.append(_load_thin(manifest_path, images_path, warnings))
    return ThinTree(tuple(manifests), tuple(warnings.found))


def load_thin_manifests(directory: Path) -> list[Manifest]:
    """Read a thin tree strictly: what ``load_thin_tree`` would warn about is an error."""
    return list(load_thin_tree(directory, strict=True).manifests)
