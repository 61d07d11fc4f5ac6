"""kpromo (Container Image Promoter) manifests: plain files, thin directories, edges, snapshots.

A plain manifest is one YAML file ``{registries, images}``. A thin directory splits it:
``manifests/<x>/promoter-manifest.yaml`` holds ``{registries}`` (an ``imagesPath`` key is accepted
and ignored) and ``images/<x>/images.yaml`` the list of images. Parsing is strict, like kpromo's
``yaml.UnmarshalStrict``: unknown keys, duplicate keys and wrong types are errors; imgctl's strict
YAML (``_internal.strict_yaml``) also refuses keys written twice in other spellings and merges
that hide a key. Files are read as bounded UTF-8 text (``_internal.files``). Unlike kpromo,
thin manifests get the same validation as plain ones (kpromo skips digest and tag checks there).

``edges_of`` turns manifests into promotion edges (image x digest x tag x destination) and refuses
two different digests for one destination tag. ``snapshot_yaml`` / ``snapshot_csv`` write the
formats ``kpromo cip --snapshot`` prints; ``load_images`` reads the YAML one back.

Pure: reads files, never the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from imgctl._internal import strict_yaml
from imgctl._internal.files import read_text
from imgctl.errors import InvalidReferenceError, UsageError
from imgctl.oci.reference import NAME_TOTAL_LENGTH_MAX, Reference, canonical_registry

__all__ = [
    "IMAGES_FILE",
    "MANIFEST_FILE",
    "Edge",
    "ImageEntry",
    "Manifest",
    "ManifestError",
    "RegistryEntry",
    "edges_of",
    "load_images",
    "load_manifest",
    "load_thin_manifests",
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


class ManifestError(UsageError):
    """A manifest, images file or thin directory is wrong; the message names the file."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


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


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    """One promotion: ``digest`` (and ``tag``, unless tagless) from source to destination."""

    source_registry: str
    destination_registry: str
    image: str
    digest: str
    tag: str | None = field(compare=False)
    # Compared in place of ``tag``: None cannot be ordered against a str, and tagless edges
    # should sort before the tagged ones of the same digest.
    _tag_order: tuple[bool, str] = field(init=False, repr=False, default=(False, ""))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tag_order", (self.tag is not None, self.tag or ""))

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
        return f"{self.source_repository}@{self.digest} -> {self.destination}"


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

    def pairs(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        if _is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.at(node, f"{what} must be a mapping, not {_kind(node)}")
        return [(self.text(key, f"a key of {what}"), value) for key, value in node.value]

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


def _images(doc: _Document, node: yaml.Node | None) -> tuple[ImageEntry, ...]:
    if node is None:
        return ()
    out: list[ImageEntry] = []
    for entry in doc.items(node, "'images'"):
        fields = doc.fields(entry, "an image", _IMAGE_KEYS)
        name = doc.text(fields["name"], "'name'") if "name" in fields else ""
        dmap: dict[str, tuple[str, ...]] = {}
        if "dmap" in fields:
            for digest, tags_node in doc.pairs(fields["dmap"], "'dmap'"):
                tags = [doc.text(tag, "a tag") for tag in doc.items(tags_node, "the tags")]
                dmap[digest] = tuple(dict.fromkeys(tags))  # kpromo keeps a set of edges
        out.append(ImageEntry(name, MappingProxyType(dmap)))
    return tuple(out)


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
            # _check_repositories measures the real registry/image names.
            return None
        hint = exc.hint.replace(f"{_PROBE_HOST}/", "") if exc.hint else None
        return detail, hint
    return None


def _registry_name_problem(name: str) -> tuple[str, str | None] | None:
    host, _, path = name.partition("/")
    problem = _name_problem(name if path else f"{name}/{_PROBE_HOST}")
    if problem is not None:
        return problem
    try:
        registry = Reference.parse_repository(f"{host}/{_PROBE_HOST}").registry
    except InvalidReferenceError:
        return None  # only the padded length can fail here; _check_repositories has the real one
    if registry != canonical_registry(host):
        return (
            f"{host!r} is not a registry host",
            "a registry name starts with a host that has a '.', a ':port', or is localhost",
        )
    return None


def _image_name_problem(name: str) -> tuple[str, str | None] | None:
    return _name_problem(f"{_PROBE_HOST}/{name}")


def _check_registries(doc: _Document, registries: Sequence[RegistryEntry]) -> None:
    # kpromo's order (validateRequiredComponents), first problem only.
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


def _check_images(doc: _Document, images: Sequence[ImageEntry]) -> None:
    for index, image in enumerate(images, 1):
        if not image.name:
            raise doc.fail("images: 'name' field cannot be empty", f"image #{index}")
        if not image.dmap:
            raise doc.fail("images: 'dmap' field cannot be empty", f"image {image.name!r}")
    for image in images:
        problem = _image_name_problem(image.name)
        if problem is not None:
            raise doc.fail(f"invalid image name: {image.name}", problem[0], problem[1])
        for digest, tags in image.dmap.items():
            if not _DIGEST_RE.fullmatch(digest):
                raise doc.fail(f"invalid digest: {digest}", f"image {image.name!r}")
            for tag in tags:
                if not _TAG_RE.fullmatch(tag):
                    raise doc.fail(f"invalid tag: {tag}", f"image {image.name!r}, digest {digest}")


def _check_repositories(
    doc: _Document, registries: Sequence[RegistryEntry], images: Sequence[ImageEntry]
) -> None:
    # Each part can be valid while registry/image together is longer than a name may be.
    for registry in registries:
        for image in images:
            try:
                Reference.parse_repository(f"{registry.name}/{image.name}")
            except InvalidReferenceError as exc:
                raise doc.fail(
                    f"invalid repository: {registry.name}/{image.name}", _reference_detail(exc)
                ) from None


# ---------------------------------------------------------------------------------- loaders


def load_manifest(path: Path) -> Manifest:
    """Read and validate a plain manifest (``registries`` and ``images`` in one file)."""
    path = Path(path)
    doc = _Document(str(path))
    root = doc.compose(_read(path))
    if root is None:
        raise doc.fail("'registries' field cannot be empty", "the file is empty")
    fields = doc.fields(root, "a manifest", _MANIFEST_KEYS)
    registries = _registries(doc, fields.get("registries"))
    images = _images(doc, fields.get("images"))
    _check_registries(doc, registries)
    _check_images(doc, images)
    _check_repositories(doc, registries, images)
    return Manifest(registries, images, str(path))


def _parse_images(doc: _Document, text: str) -> tuple[ImageEntry, ...]:
    root = doc.compose(text)
    if root is None:
        raise doc.fail("the file is empty", hint="write [] for a list of no images")
    if _is_null(root):
        raise doc.at(root, "'images' must be a list, not null")
    images = _images(doc, root)
    _check_images(doc, images)
    return images


def load_images(path: Path) -> tuple[ImageEntry, ...]:
    """Read and validate an ``images.yaml`` (a list of images), such as a snapshot."""
    path = Path(path)
    return _parse_images(_Document(str(path)), _read(path, "images file"))


def _load_thin(manifest_path: Path, images_path: Path) -> Manifest:
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
    _check_repositories(images_doc, registries, images)
    return Manifest(registries, images, str(manifest_path), str(images_path))


def _misplaced(top: Path, filename: str, what: str) -> None:
    if not top.is_dir():
        return
    for found in sorted(top.rglob(filename)):
        if found.parent.parent != top:
            # kpromo: `unexpected manifest path %q`; it only looks at manifests/, we look at both.
            raise ManifestError(f'unexpected {what} path "{found}"', path=str(found))
        if not found.is_file():
            raise ManifestError(f'"{found}" is not a regular file', path=str(found))


def load_thin_manifests(directory: Path) -> list[Manifest]:
    """Read a thin directory: ``manifests/<x>/promoter-manifest.yaml`` + ``images/<x>/images.yaml``.

    Every ``<x>`` must have both files (kpromo ignores an images file without a manifest; we
    refuse it, since nothing would promote it). Anything outside ``manifests/`` and ``images/``
    is ignored, as kpromo does.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(f"{directory}: no such directory", path=str(directory))
    manifests_dir = directory / "manifests"
    images_dir = directory / "images"
    _misplaced(manifests_dir, MANIFEST_FILE, "manifest")
    _misplaced(images_dir, IMAGES_FILE, "images")

    names: set[str] = set()
    for top, filename in ((manifests_dir, MANIFEST_FILE), (images_dir, IMAGES_FILE)):
        if top.is_dir():
            names.update(p.parent.name for p in top.glob(f"*/{filename}"))
    if not names:
        raise ManifestError(
            f"no manifests found in dir: {directory}",
            path=str(directory),
            hint=f"expected manifests/<name>/{MANIFEST_FILE} and images/<name>/{IMAGES_FILE}",
        )

    manifests: list[Manifest] = []
    for name in sorted(names):
        manifest_path = manifests_dir / name / MANIFEST_FILE
        images_path = images_dir / name / IMAGES_FILE
        for required in (manifest_path, images_path):
            if not required.is_file():
                raise ManifestError(
                    f'corresponding file "{required}" does not exist', path=str(required)
                )
        manifests.append(_load_thin(manifest_path, images_path))
    return manifests


# ------------------------------------------------------------------------------------ edges


def edges_of(manifests: Sequence[Manifest]) -> list[Edge]:
    """All promotion edges of ``manifests``, sorted, one per destination; refuse conflicting tags.

    One edge per image x digest x tag x destination; a digest without tags gives one tagless
    edge. When several edges write the same digest to the same destination (two manifests
    wanting one build at one tag, or two registry/image splits naming one repository), only the
    first in sort order is kept, as kpromo does. Two different digests for one destination tag
    are ``overlapping edges detected``.
    """
    edges: dict[str, Edge] = {}
    # (destination repository, tag) -> digest -> the first file that wants it
    claims: dict[tuple[str, str], dict[str, str]] = {}
    for manifest in manifests:
        source = manifest.source
        where = manifest.images_path or manifest.path
        for image in manifest.images:
            for digest, tags in image.dmap.items():
                for destination in manifest.destinations:
                    for tag in tags or (None,):
                        edge = Edge(source.name, destination.name, image.name, digest, tag)
                        if tag is not None:
                            wanted = claims.setdefault((edge.destination_repository, tag), {})
                            wanted.setdefault(digest, where)
                        known = edges.get(edge.destination)
                        if known is None or edge < known:
                            edges[edge.destination] = edge
    conflicts = sorted((target, wanted) for target, wanted in claims.items() if len(wanted) > 1)
    if conflicts:
        raise _overlap_error(conflicts)
    return sorted(edges.values())


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
