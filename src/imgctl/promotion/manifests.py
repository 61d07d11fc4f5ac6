"""kpromo (Container Image Promoter) manifests: plain files, thin directories, edges, snapshots.

A plain manifest is one YAML file ``{registries, images}``. A thin directory splits it:
``manifests/<x>/promoter-manifest.yaml`` holds ``{registries}`` (an ``imagesPath`` key is accepted
and ignored) and ``images/<x>/images.yaml`` the list of images. Parsing is strict, like kpromo's
``yaml.UnmarshalStrict``: unknown keys, duplicate keys and wrong types are errors; imgctl's strict
YAML (``_internal.strict_yaml``) also refuses keys written twice in other spellings and merges
that hide a key. Files are read as bounded UTF-8 text (``_internal.files``).

Plain manifests are validated as kpromo validates them: the first problem is an error. kpromo
runs no such validation on thin trees, and the real ones (kubernetes/k8s.io) hold entries it
would refuse; ``load_thin_tree`` therefore reads a thin tree as kpromo does and turns what
imgctl's validation finds in one entry (an image, or one digest with its tags) into a
``ManifestWarning`` naming file and line, skipping that entry only; ``strict=True`` makes them
errors. What makes a whole file unreadable or ambiguous stays an error either way.

``edges_of`` turns manifests into promotion edges (image x digest x tag x destination) and refuses
two different digests for one destination tag. ``snapshot_yaml`` / ``snapshot_csv`` write the
formats ``kpromo cip --snapshot`` prints; ``load_images`` reads the YAML one back.

Pure: reads files, never the network.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from imgctl._internal import strict_yaml
from imgctl._internal.files import read_text
from imgctl.errors import InvalidReferenceError, ManifestError, UsageError
from imgctl.oci.reference import NAME_TOTAL_LENGTH_MAX, Reference, canonical_registry

__all__ = [
    "IMAGES_FILE",
    "MANIFEST_FILE",
    "Edge",
    "ImageEntry",
    "Manifest",
    "ManifestWarning",
    "RegistryEntry",
    "ThinTree",
    "edges_of",
    "load_images",
    "load_manifest",
    "load_thin_manifests",
    "load_thin_tree",
    "snapshot_csv",
    "snapshot_yaml",
]

MANIFEST_FILE = "promoter-manifest.yaml"
IMAGES_FILE = "images.yaml"

# kpromo's own expressions (schema.ValidateDigest / ValidateTag); Go's \w is ASCII-only.
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_RE = re.compile(r"\w[\w.-]{0,127}", re.ASCII)

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"

# Any host works: it only makes the reference parser read the whole image name as a path.
_PROBE_HOST = "registry.invalid"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One ``registries`` entry: a registry name (host, optional port and path) and its role."""

    name: str
    src: bool = False
    service_account: str | None = None


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One ``images`` entry: an image name and its digests, each with its tags (maybe none)."""

    name: str
    dmap: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: exactly one source registry, destinations, images."""

    registries: tuple[RegistryEntry, ...]
    images: tuple[ImageEntry, ...]
    path: str
    images_path: str | None = None

    @property
    def source(self) -> RegistryEntry:
        """The registry marked ``src: true``."""
        for registry in self.registries:
            if registry.src:
                return registry
        raise ManifestError(f"{self.path}: source registry must be set", path=self.path)

    @property
    def destinations(self) -> tuple[RegistryEntry, ...]:
        """Every registry but the source, in file order."""
        return tuple(r for r in self.registries if not r.src)


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class Edge:
    """One promotion: ``digest`` (and ``tag``, unless tagless) from source to destination.

    Ordered by source, destination, image, digest, then tag, a tagless edge first.
    """

    source_registry: str
    destination_registry: str
    image: str
    digest: str
    tag: str | None

    @property
    def sort_key(self) -> tuple[str, str, str, str, bool, str]:
        """What edges sort by (None cannot be ordered against a str, so not ``tag`` itself)."""
        return (
            self.source_registry,
            self.destination_registry,
            self.image,
            self.digest,
            self.tag is not None,
            self.tag or "",
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Edge):
            return NotImplemented
        return self.sort_key < other.sort_key

    @property
    def source_repository(self) -> str:
        """``<source registry>/<image>``."""
        return f"{self.source_registry}/{self.image}"

    @property
    def destination_repository(self) -> str:
        """``<destination registry>/<image>``."""
        return f"{self.destination_registry}/{self.image}"

    @property
    def destination(self) -> str:
        """What the edge writes: ``dst/repo:tag``, or ``dst/repo@digest`` when tagless."""
        target = f":{self.tag}" if self.tag is not None else f"@{self.digest}"
        return f"{self.destination_repository}{target}"

    @property
    def key(self) -> str:
        """``src/repo@digest -> dst/repo:tag`` (``dst/repo@digest`` when tagless)."""
        # One f-string, not the properties: select_shard hashes the key of every edge.
        image, digest, tag = self.image, self.digest, self.tag
        target = f"@{digest}" if tag is None else f":{tag}"
        source, destination = self.source_registry, self.destination_registry
        return f"{source}/{image}@{digest} -> {destination}/{image}{target}"


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """Build many objects without the cycle collector.

    Hundreds of thousands of new tuples and edges (no cycles among them) make the collector
    walk every object again and again: with it, the edges of kubernetes/k8s.io's tree took
    2.5-3x as long. It runs again, as before, afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ----------------------------------------------------------------------------------- YAML input


def _read(path: Path, what: str = "manifest") -> str:
    try:
        return read_text(path, what)
    except UsageError as exc:
        raise ManifestError(exc.message, path=str(path), hint=exc.hint) from None


class _Document:
    """One file being read: turns YAML nodes into values, or errors that name the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def compose(self, text: str) -> yaml.Node | None:
        try:
            return strict_yaml.compose(text)
        except strict_yaml.StrictYAMLError as exc:
            raise self.fail(str(exc)) from None

    def fail(self, core: str, context: str | None = None, hint: str | None = None) -> ManifestError:
        message = f"{self.source}: {core}"
        if context:
            message += f" ({context})"
        return ManifestError(message, path=self.source, hint=hint)

    def at(self, node: yaml.Node, problem: str) -> ManifestError:
        return self.fail(f"line {node.start_mark.line + 1}: {problem}")

    def fields(self, node: yaml.Node, what: str, allowed: Sequence[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.at(node, f"{what} must be a mapping, not {_kind(node)}")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value not in allowed:
                shown = key.value if isinstance(key, yaml.ScalarNode) else _kind(key)
                raise self.at(
                    key, f"unknown key {shown!r} in {what} (expected {', '.join(allowed)})"
                )
            out[key.value] = value
        return out

    def pairs(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The entries of a mapping: each key's text, its node and the value's node."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.at(node, f"{what} must be a mapping, not {_kind(node)}")
        return [(self.text(key, f"a key of {what}"), key, value) for key, value in node.value]

    def items(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.at(node, f"{what} must be a list, not {_kind(node)}")
        return list(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        # Like yaml.v2 decoding into a Go string: any scalar counts by its text (a tag written
        # 1.10 stays "1.10"), and null is the empty string.
        if not isinstance(node, yaml.ScalarNode):
            raise self.at(node, f"{what} must be a string, not {_kind(node)}")
        return "" if node.tag == _NULL_TAG else str(node.value)

    def flag(self, node: yaml.Node, what: str) -> bool:
        if _is_null(node):
            return False
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL_TAG:
            return yaml.constructor.SafeConstructor.bool_values[str(node.value).lower()]
        raise self.at(node, f"{what} must be true or false, not {_kind(node)}")


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "null"
    return repr(node.value)


# ------------------------------------------------------------------------------ structure


_MANIFEST_KEYS = ("registries", "images")
_THIN_KEYS = ("registries", "imagesPath")
_REGISTRY_KEYS = ("name", "src", "service-account")
_IMAGE_KEYS = ("name", "dmap")


@dataclass(frozen=True, slots=True)
class _Read:
    """One image entry as read, with the (1-based) lines of the entry and of each digest."""

    entry: ImageEntry
    line: int
    digest_lines: Mapping[str, int]


def _registries(doc: _Document, node: yaml.Node | None) -> tuple[RegistryEntry, ...]:
    if node is None:
        return ()
    out: list[RegistryEntry] = []
    for entry in doc.items(node, "'registries'"):
        fields = doc.fields(entry, "a registry", _REGISTRY_KEYS)
        name = doc.text(fields["name"], "'name'") if "name" in fields else ""
        src = doc.flag(fields["src"], "'src'") if "src" in fields else False
        account = None
        if "service-account" in fields:
            account = doc.text(fields["service-account"], "'service-account'") or None
        out.append(RegistryEntry(name, src, account))
    return tuple(out)


def _images(doc: _Document, node: yaml.Node | None) -> list[_Read]:
    # Shape errors (a list that is not one, an unknown key, a tag that is a mapping) are the
    # file's, as in kpromo's yaml.UnmarshalStrict: nothing after them can be trusted.
    if node is None:
        return []
    out: list[_Read] = []
    for entry in doc.items(node, "'images'"):
        fields = doc.fields(entry, "an image", _IMAGE_KEYS)
        name = doc.text(fields["name"], "'name'") if "name" in fields else ""
        dmap: dict[str, tuple[str, ...]] = {}
        lines: dict[str, int] = {}
        if "dmap" in fields:
            for digest, key, tags_node in doc.pairs(fields["dmap"], "'dmap'"):
                tags = [doc.text(tag, "a tag") for tag in doc.items(tags_node, "the tags")]
                dmap[digest] = tuple(dict.fromkeys(tags))  # kpromo keeps a set of edges
                lines[digest] = key.start_mark.line + 1
        image = ImageEntry(name, MappingProxyType(dmap))
        out.append(_Read(image, entry.start_mark.line + 1, lines))
    return out


# ----------------------------------------------------------------------------- validation


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
            # _findings measures the real registry/image names.
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
        return None  # only the padded length can fail here; _findings has the real one
    if registry != canonical_registry(host):
        return (
            f"{host!r} is not a registry host",
            "a registry name starts with a host that has a '.', a ':port', or is localhost",
        )
    return None


def _image_name_problem(name: str) -> tuple[str, str | None] | None:
    return _name_problem(f"{_PROBE_HOST}/{name}")


def _check_registries(doc: _Document, registries: Sequence[RegistryEntry]) -> None:
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
class _Finding:
    """One entry imgctl's validation refuses: an image (``digest`` None), or one digest of it."""

    line: int
    problem: str
    context: str
    image: int
    digest: str | None = None
    hint: str | None = None


def _findings(images: Sequence[_Read], registries: Sequence[RegistryEntry]) -> list[_Finding]:
    """Every refused entry, in kpromo's order of checks (so the first one is kpromo's error).

    One finding per entry: an image with no name, no ``dmap``, an invalid name, or a name too
    long under one of the registries is refused whole; otherwise each digest that is invalid
    or carries an invalid tag is refused with its tags (promoting it under some of its tags
    only would be a different promotion from the one written).
    """
    out: list[_Finding] = []
    refused: set[int] = set()
    for index, read in enumerate(images):  # validateRequiredComponents
        if not read.entry.name:
            out.append(
                _Finding(
                    read.line, "images: 'name' field cannot be empty", f"image #{index + 1}", index
                )
            )
        elif not read.entry.dmap:
            out.append(
                _Finding(
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
        problem = _image_name_problem(name)
        if problem is not None:
            out.append(
                _Finding(
                    read.line, f"invalid image name: {name}", problem[0], index, None, problem[1]
                )
            )
            refused.add(index)
            continue
        for digest, tags in read.entry.dmap.items():
            line = read.digest_lines.get(digest, read.line)
            if not _DIGEST_RE.fullmatch(digest):
                out.append(
                    _Finding(line, f"invalid digest: {digest}", f"image {name!r}", index, digest)
                )
                continue
            for tag in tags:
                if not _TAG_RE.fullmatch(tag):
                    context = f"image {name!r}, digest {digest}"
                    out.append(_Finding(line, f"invalid tag: {tag}", context, index, digest))
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
                out.append(_Finding(read.line, core, _reference_detail(exc), index))
                break
    return out


def _error(doc: _Document, finding: _Finding) -> ManifestError:
    return doc.fail(f"line {finding.line}: {finding.problem}", finding.context, finding.hint)


def _kept(images: Sequence[_Read], findings: Sequence[_Finding]) -> tuple[ImageEntry, ...]:
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


# ---------------------------------------------------------------------------------- loaders


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
    doc = _Document(str(path))
    root = doc.compose(_read(path))
    if root is None:
        raise doc.fail("'registries' field cannot be empty", "the file is empty")
    fields = doc.fields(root, "a manifest", _MANIFEST_KEYS)
    registries = _registries(doc, fields.get("registries"))
    images = _images(doc, fields.get("images"))
    _check_registries(doc, registries)
    findings = _findings(images, registries)
    if findings:
        raise _error(doc, findings[0])
    return Manifest(registries, tuple(read.entry for read in images), str(path))


def _parse_images(doc: _Document, text: str) -> list[_Read]:
    root = doc.compose(text)
    if root is None or _is_null(root):
        # Empty, only comments ("# No images yet" in kubernetes/k8s.io), or null: yaml.v2
        # decodes all three into an empty list, and so does kpromo.
        return []
    return _images(doc, root)


def load_images(path: Path) -> tuple[ImageEntry, ...]:
    """Read and validate an ``images.yaml`` (a list of images), such as a snapshot."""
    path = Path(path)
    doc = _Document(str(path))
    images = _parse_images(doc, _read(path, "images file"))
    findings = _findings(images, ())
    if findings:
        raise _error(doc, findings[0])
    return tuple(read.entry for read in images)


_SKIPPED_IMAGE = "this image is skipped"
_SKIPPED_DIGEST = "this digest is skipped"


def _load_thin(manifest_path: Path, images_path: Path, warnings: _Warnings) -> Manifest:
    doc = _Document(str(manifest_path))
    root = doc.compose(_read(manifest_path))
    if root is None:
        raise doc.fail("'registries' field cannot be empty", "the file is empty")
    fields = doc.fields(root, "a thin manifest", _THIN_KEYS)
    if "imagesPath" in fields:
        doc.text(fields["imagesPath"], "'imagesPath'")  # deprecated in kpromo: read, not used
    registries = _registries(doc, fields.get("registries"))
    _check_registries(doc, registries)
    images_doc = _Document(str(images_path))
    images = _parse_images(images_doc, _read(images_path, "images file"))
    findings = _findings(images, registries)
    if findings and warnings.strict:
        raise _error(images_doc, findings[0])  # the first in kpromo's order of checks
    for finding in sorted(findings, key=lambda f: f.line):
        error = _error(images_doc, finding)
        skipped = _SKIPPED_IMAGE if finding.digest is None else _SKIPPED_DIGEST
        warnings.add(ManifestWarning(str(images_path), finding.line, str(error), skipped))
    return Manifest(registries, _kept(images, findings), str(manifest_path), str(images_path))


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
    imgctl's validation refuses (see ``_findings``) is left out with a warning naming file and
    line, and the rest of the tree is read. ``strict`` makes every warning an error.

    Errors either way: YAML that is not valid or is ambiguous (``_internal.strict_yaml``), a
    file of the wrong shape (unknown keys, wrong types), a manifest's registries (no source,
    two sources, a bad name), a manifest without its images file, a manifest at another depth,
    or no manifest at all.
    """
    with _bulk():
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


# ------------------------------------------------------------------------------------ edges


def edges_of(manifests: Sequence[Manifest]) -> list[Edge]:
    """All promotion edges of ``manifests``, sorted, one per destination; refuse conflicting tags.

    One edge per image x digest x tag x destination; a digest without tags gives one tagless
    edge. When several edges write the same digest to the same destination (two manifests
    wanting one build at one tag, or two registry/image splits naming one repository), only the
    first in sort order is kept, as kpromo does. Two different digests for one destination tag
    are ``overlapping edges detected``.
    """
    with _bulk():
        return _edges(manifests)


def _edges(manifests: Sequence[Manifest]) -> list[Edge]:
    # Plain tuples until the end: 700,000 edges (kubernetes/k8s.io) are built, deduplicated
    # and sorted several times faster than Edge objects are, which are made once, in order.
    # destination ("repo:tag" or "repo@digest") -> (sort key, the first file that wants it)
    best: dict[str, tuple[tuple[str, str, str, str, bool, str], str]] = {}
    # (destination repository, tag) -> digest -> the first file that wants it, when a tag is
    # wanted at two digests
    conflicts: dict[tuple[str, str], dict[str, str]] = {}
    for manifest in manifests:
        source = manifest.source.name
        destinations = [registry.name for registry in manifest.destinations]
        where = manifest.images_path or manifest.path
        for image in manifest.images:
            name = image.name
            for digest, tags in image.dmap.items():
                for destination in destinations:
                    repository = f"{destination}/{name}"
                    if not tags:
                        key = (source, destination, name, digest, False, "")
                        target = f"{repository}@{digest}"
                        known = best.get(target)
                        if known is None or key < known[0]:
                            best[target] = (key, where if known is None else known[1])
                        continue
                    for tag in tags:
                        key = (source, destination, name, digest, True, tag)
                        target = f"{repository}:{tag}"
                        known = best.get(target)
                        if known is None:
                            best[target] = (key, where)
                        elif known[0][3] != digest:
                            wanted = conflicts.setdefault((repository, tag), {})
                            wanted.setdefault(known[0][3], known[1])
                            wanted.setdefault(digest, where)
                        elif key < known[0]:
                            best[target] = (key, known[1])
    if conflicts:
        raise _overlap_error(sorted(conflicts.items()))
    return [
        Edge(src, dst, image, digest, tag if tagged else None)
        for (src, dst, image, digest, tagged, tag), _ in sorted(best.values())
    ]


def _overlap_error(conflicts: list[tuple[tuple[str, str], dict[str, str]]]) -> ManifestError:
    (repository, tag), wanted = conflicts[0]
    first, second, *others = sorted(wanted.items())
    message = (
        f"overlapping edges detected: {repository}:{tag} is wanted at {first[0]} ({first[1]})"
        f" and at {second[0]} ({second[1]})"
    )
    if others:
        message += f" and {len(others)} more digest(s)"
    if len(conflicts) > 1:
        message += f"; {len(conflicts) - 1} more destination tag(s) conflict"
    return ManifestError(
        message, path=first[1], hint="a tag can point at one digest only: fix one of the files"
    )


# -------------------------------------------------------------------------------- snapshots


def _snapshot_rows(
    images: Mapping[str, Mapping[str, Sequence[str]]],
) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    rows: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for name in sorted(images):
        dmap = images[name]
        if not dmap:
            continue  # an empty repository has nothing to list, and dmap cannot be empty
        problem = _image_name_problem(name)
        if problem is not None:
            raise ManifestError(f"snapshot: invalid image name: {name} ({problem[0]})")
        digests: list[tuple[str, list[str]]] = []
        for digest in sorted(dmap):
            if not _DIGEST_RE.fullmatch(digest):
                raise ManifestError(f"snapshot: invalid digest: {digest} (image {name!r})")
            tags = sorted(set(dmap[digest]))
            for tag in tags:
                if not _TAG_RE.fullmatch(tag):
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
