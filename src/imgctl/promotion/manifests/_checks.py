"""Validation as kpromo validates plain manifests, plus imgctl's reference grammar for names.

Each refused entry (an image, or one digest with its tags) is a ``Finding``: the first is a
plain manifest's error, and each one a thin tree's warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from imgctl.errors import InvalidReferenceError, ManifestError
from imgctl.oci.reference import NAME_TOTAL_LENGTH_MAX, Reference, canonical_registry
from imgctl.promotion.manifests._model import ImageEntry, RegistryEntry
from imgctl.promotion.manifests._yaml import Document, ReadImage

__all__ = [
    "DIGEST_RE",
    "TAG_RE",
    "Finding",
    "check_registries",
    "finding_error",
    "image_name_problem",
    "kept_images",
    "refused_entries",
]

# kpromo's own expressions (schema.ValidateDigest / ValidateTag); Go's \w is ASCII-only.
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
TAG_RE = re.compile(r"\w[\w.-]{0,127}", re.ASCII)

# Any host works: it only makes the reference parser read the whole image name as a path.
_PROBE_HOST = "registry.invalid"


def _reference_detail(exc: InvalidReferenceError) -> str:
    return exc.message.removeprefix(f"invalid reference {exc.reference!r}: ")


def _name_problem(reference: str) -> tuple[str, str | None] | None:
    """What the reference grammar finds wrong in ``reference`` (maybe padded with _PROBE_HOST)."""
    try:
        Reference.parse_repository(reference)
    except InvalidReferenceError as exc:
        detail = _reference_detail(exc)
        if detail.endswith(f"the limit is {NAME_TOTAL_LENGTH_MAX}"):
            # Checked last, so nothing else is wrong; the padding may be what is too long.
            # refused_entries measures the real registry/image names.
            return None
        hint = exc.hint.replace(f"{_PROBE_HOST}/", "") if exc.hint else None
        return detail, hint
    return None


def _registry_name_problem(name: str) -> tuple[str, str | None] | None:
    host, slash, _ = name.partition("/")
    problem = _name_problem(name if slash else f"{name}/{_PROBE_HOST}")
    if problem is not None:
        return problem
    try:
        registry = Reference.parse_repository(f"{host}/{_PROBE_HOST}").registry
    except InvalidReferenceError:
        return None  # only the padded length can fail here; refused_entries has the real one
    if registry != canonical_registry(host):
        return (
            f"{host!r} is not a registry host",
            "a registry name starts with a host that has a '.', a ':port', or is localhost",
        )
    return None


def image_name_problem(name: str) -> tuple[str, str | None] | None:
    """What is wrong with an image name (problem, hint), or None."""
    return _name_problem(f"{_PROBE_HOST}/{name}")


def check_registries(doc: Document, registries: Sequence[RegistryEntry]) -> None:
    """Raise the file's error for the first problem of its registries, in kpromo's order."""
    # kpromo's order (validateRequiredComponents), first problem only. Always the file's error:
    # the registries say where images come from and go to, and a thin manifest holds nothing
    # else.
    if not registries:
        raise doc.fail("'registries' field cannot be empty")
    sources = [r for r in registries if r.src]
    if len(sources) > 1:
        raise doc.fail(
            "cannot have more than 1 source registry", ", ".join(r.name for r in sources)
        )
    if not sources or not sources[0].name:
        raise doc.fail("source registry must be set", hint="mark one registry with src: true")
    seen: set[str] = set()
    for index, registry in enumerate(registries, 1):
        if not registry.name:
            raise doc.fail("registries: 'name' field cannot be empty", f"registry #{index}")
        problem = _registry_name_problem(registry.name)
        if problem is not None:
            raise doc.fail(f"invalid registry name: {registry.name}", problem[0], problem[1])
        if registry.name in seen:
            raise doc.fail(f"registry listed twice: {registry.name}")
        seen.add(registry.name)


@dataclass(frozen=True, slots=True)
class Finding:
    """One entry imgctl's validation refuses: an image (``digest`` None), or one digest of it."""

    line: int
    problem: str
    context: str
    image: int
    digest: str | None = None
    hint: str | None = None


def refused_entries(
    images: Sequence[ReadImage], registries: Sequence[RegistryEntry]
) -> list[Finding]:
    """Every refused entry, in kpromo's order of checks (so the first one is kpromo's error).

    One finding per entry: an image with no name, no ``dmap``, an invalid name, or a name too
    long under one of the registries is refused whole; otherwise each digest that is invalid
    or carries an invalid tag is refused with its tags (promoting it under some of its tags
    only would be a different promotion from the one written).
    """
    out: list[Finding] = []
    refused: set[int] = set()
    for index, read in enumerate(images):  # validateRequiredComponents
        if not read.entry.name:
            out.append(
                Finding(
                    read.line, "images: 'name' field cannot be empty", f"image #{index + 1}", index
                )
            )
        elif not read.entry.dmap:
            out.append(
                Finding(
                    read.line,
                    "images: 'dmap' field cannot be empty",
                    f"image {read.entry.name!r}",
                    index,
                )
            )
        else:
            continue
        refused.add(index)
    for index, read in enumerate(images):  # validateImages, and imgctl's name grammar
        if index in refused:
            continue
        name = read.entry.name
        problem = image_name_problem(name)
        if problem is not None:
            out.append(
                Finding(
                    read.line, f"invalid image name: {name}", problem[0], index, None, problem[1]
                )
            )
            refused.add(index)
            continue
        for digest, tags in read.entry.dmap.items():
            line = read.digest_lines.get(digest, read.line)
            if not DIGEST_RE.fullmatch(digest):
                out.append(
                    Finding(line, f"invalid digest: {digest}", f"image {name!r}", index, digest)
                )
                continue
            for tag in tags:
                if not TAG_RE.fullmatch(tag):
                    context = f"image {name!r}, digest {digest}"
                    out.append(Finding(line, f"invalid tag: {tag}", context, index, digest))
                    break
    for index, read in enumerate(images):
        # Each part can be valid while registry/image together is longer than a name may be.
        if index in refused:
            continue
        for registry in registries:
            repository = f"{registry.name}/{read.entry.name}"
            if len(repository) <= NAME_TOTAL_LENGTH_MAX:
                continue  # both parts are valid names, so only the length could fail
            try:
                Reference.parse_repository(repository)
            except InvalidReferenceError as exc:
                core = f"invalid repository: {repository}"
                out.append(Finding(read.line, core, _reference_detail(exc), index))
                break
    return out


def finding_error(doc: Document, finding: Finding) -> ManifestError:
    """The error ``finding`` is: file, line, problem, context."""
    return doc.fail(f"line {finding.line}: {finding.problem}", finding.context, finding.hint)


def kept_images(images: Sequence[ReadImage], findings: Sequence[Finding]) -> tuple[ImageEntry, ...]:
    """The images without the refused entries."""
    whole = {f.image for f in findings if f.digest is None}
    digests: dict[int, set[str]] = {}
    for finding in findings:
        if finding.digest is not None:
            digests.setdefault(finding.image, set()).add(finding.digest)
    out: list[ImageEntry] = []
    for index, read in enumerate(images):
        if index in whole:
            continue
        dropped = digests.get(index)
        if dropped:
            kept = {d: t for d, t in read.entry.dmap.items() if d not in dropped}
            out.append(ImageEntry(read.entry.name, MappingProxyType(kept)))
        else:
            out.append(read.entry)
    return tuple(out)
