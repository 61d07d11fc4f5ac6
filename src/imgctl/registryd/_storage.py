"""Filesystem storage of the embedded registry: content-addressed blobs, per-repository links.

Layout under the root (docs/registry.md shows it too)::

    blobs/<alg>/<2 hex>/<hex>                     blob and manifest bytes, by digest
    repositories/<name>/_layers/<alg>/<hex>       the repository holds this blob
    repositories/<name>/_manifests/<alg>/<hex>    the repository holds this manifest (JSON facts)
    repositories/<name>/_tags/<tag>               the digest a tag points at
    repositories/<name>/_referrers/<alg>-<hex>/<alg>-<hex>   subject -> manifest with that subject
    uploads/<uuid>/data, uploads/<uuid>/repository           an open upload session
    tmp/                                          files being written, renamed into place

Every write goes to ``tmp/`` first and is renamed into place, so a reader never sees half a file
and concurrent writers of the same content both succeed. Name components never start with
``_`` (the distribution grammar, checked by ``imgctl.oci``), so the ``_`` directories cannot
collide with a nested repository.

Durability: what a method wrote is on disk when it returns, so an answer sent afterwards never
acknowledges something a power cut can take back. A file is fsynced before it is renamed into
place and its directory after the rename (and before the next step of the same change, so a
tag never outlives the manifest link it needs); a new directory's parent is fsynced after the
mkdir; a removal's directory after the unlink. Upload sessions are cleaned up without fsync:
one may reappear after a crash, holding nothing that any blob depends on.

All methods are synchronous and may block on fsync: call the writing ones from a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgctl.errors import InvalidDigestError
from imgctl.oci.digest import Digest
from imgctl.oci.reference import valid_repository, valid_tag

__all__ = [
    "STORED_ALGORITHMS",
    "ManifestInfo",
    "Storage",
    "UnsafePathError",
    "parse_digest",
    "tag_order",
    "valid_upload_id",
]

# The digest algorithms this registry stores: the OCI image spec's registered ones. A digest
# that oci's grammar accepts for another algorithm (sha384, as go-digest has it) is refused.
STORED_ALGORITHMS = frozenset({"sha256", "sha512"})
_UPLOAD_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_READ_CHUNK = 1 << 20


class UnsafePathError(ValueError):
    """A name, tag, digest or upload id that must never become part of a path."""


def tag_order(tag: str) -> tuple[str, str]:
    """Sort key of the spec's lexical tag order: case-insensitive, upper case first on a tie."""
    return tag.lower(), tag


def valid_upload_id(upload_id: str) -> bool:
    """True for an upload id this registry could have issued (a lowercase UUID 4)."""
    return _UPLOAD_RE.fullmatch(upload_id) is not None


def parse_digest(value: str) -> tuple[str, str] | None:
    """``(algorithm, hex)`` of a digest in oci's grammar of an algorithm stored here, else None."""
    try:
        digest = Digest.parse(value)
    except InvalidDigestError:
        return None
    if digest.algorithm not in STORED_ALGORITHMS:
        return None
    return digest.algorithm, digest.hex


def _fsync_dir(directory: Path) -> None:
    """Make the entries of ``directory`` (creations, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """Make a file's content durable (an fd opened for reading does for fdatasync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be short, e.g. on a nearly full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _split_digest(digest: str) -> tuple[str, str]:
    parsed = parse_digest(digest)
    if parsed is None:
        raise UnsafePathError(f"invalid digest {digest!r}")
    return parsed


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What the registry remembers about a stored manifest besides its bytes."""

    digest: str
    media_type: str
    size: int
    subject: str | None = None
    # The manifest's artifactType, else (image manifests) its config's media type.
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The link file's content."""
        document: dict[str, Any] = {"mediaType": self.media_type, "size": self.size}
        if self.subject:
            document["subject"] = self.subject
        if self.artifact_type:
            document["artifactType"] = self.artifact_type
        if self.annotations:
            document["annotations"] = self.annotations
        return json.dumps(document, sort_keys=True).encode()

    @classmethod
    def from_json(cls, digest: str, data: bytes) -> ManifestInfo | None:
        """Read a link file; None when it is not one (a damaged file reads as absent)."""
        try:
            document = json.loads(data)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        media_type = document.get("mediaType")
        size = document.get("size")
        if not isinstance(media_type, str) or not isinstance(size, int):
            return None
        subject = document.get("subject")
        artifact_type = document.get("artifactType")
        annotations = document.get("annotations") or {}
        return cls(
            digest,
            media_type,
            size,
            subject if isinstance(subject, str) else None,
            artifact_type if isinstance(artifact_type, str) else None,
            {str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {},
        )


class Storage:
    """The registry's files under one root directory."""

    def __init__(self, root: Path) -> None:
        """Use (and create) ``root``; OSError when it cannot be created or written."""
        self.root = Path(os.path.realpath(root))
        self._root_prefix = str(self.root) + os.sep
        self._blobs = self.root / "blobs"
        self._repositories = self.root / "repositories"
        self._uploads = self.root / "uploads"
        self._tmp = self.root / "tmp"
        for directory in (self._blobs, self._repositories, self._uploads, self._tmp):
            self._make_dirs(directory)
        # Fail at start-up, not on the first push, when the root is read-only.
        probe = self._temp_file()
        os.close(probe[0])
        os.unlink(probe[1])

    # ------------------------------------------------------------------ paths

    def _inside(self, path: Path) -> Path:
        """``path`` when it resolves under the root: the second line of defence after syntax."""
        if not os.path.realpath(path).startswith(self._root_prefix):
            raise UnsafePathError(f"{path} is outside the registry root")
        return path

    def _repository(self, name: str) -> Path:
        if not valid_repository(name):
            raise UnsafePathError(f"invalid repository name {name!r}")
        return self._inside(self._repositories / name)

    def blob_path(self, digest: str) -> Path:
        """Where a blob's bytes live."""
        algorithm, encoded = _split_digest(digest)
        return self._inside(self._blobs / algorithm / encoded[:2] / encoded)

    def _layer_link(self, name: str, digest: str) -> Path:
        algorithm, encoded = _split_digest(digest)
        return self._inside(self._repository(name) / "_layers" / algorithm / encoded)

    def _manifest_link(self, name: str, digest: str) -> Path:
        algorithm, encoded = _split_digest(digest)
        return self._inside(self._repository(name) / "_manifests" / algorithm / encoded)

    def _tag_path(self, name: str, tag: str) -> Path:
        if not valid_tag(tag):
            raise UnsafePathError(f"invalid tag {tag!r}")
        return self._inside(self._repository(name) / "_tags" / tag)

    def _referrers_dir(self, name: str, subject: str) -> Path:
        algorithm, encoded = _split_digest(subject)
        return self._inside(self._repository(name) / "_referrers" / f"{algorithm}-{encoded}")

    def _upload_dir(self, upload_id: str) -> Path:
        if not valid_upload_id(upload_id):
            raise UnsafePathError(f"invalid upload id {upload_id!r}")
        return self._inside(self._uploads / upload_id)

    # ------------------------------------------------------------------ writing

    def _temp_file(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self._tmp, prefix="w-")

    @staticmethod
    def _make_dirs(directory: Path) -> None:
        """Create ``directory`` and its missing parents, each durable in its parent."""
        missing: list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            # Another request may create it at the same moment; its parent is synced anyway, as
            # that request may not have done it yet when this one answers.
            with contextlib.suppress(FileExistsError):
                created.mkdir()
            _fsync_dir(created.parent)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` durably, through a temporary file and a rename."""
        self._make_dirs(path.parent)
        fd, temp = self._temp_file()
        try:
            try:
                _write_all(fd, data)
                os.fdatasync(fd)  # the data and the size; a new file's timestamps do not matter
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _fsync_dir(path.parent)

    def _unlink(self, path: Path) -> bool:
        """Remove ``path`` durably; False if it was not there."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    # ------------------------------------------------------------------ repositories

    def repository_exists(self, name: str) -> bool:
        """True once anything (a blob, a manifest) was pushed to ``name``."""
        directory = self._repository(name)
        return (directory / "_manifests").is_dir() or (directory / "_layers").is_dir()

    def repositories(self) -> list[str]:
        """Every repository holding a manifest, sorted."""
        found: list[str] = []
        for directory, subdirs, _ in os.walk(self._repositories):
            if "_manifests" in subdirs:
                found.append(os.path.relpath(directory, self._repositories).replace(os.sep, "/"))
            # Only name components are walked into, never the registry's own directories.
            subdirs[:] = [d for d in subdirs if not d.startswith("_")]
        return sorted(found)

    # ------------------------------------------------------------------ blobs

    def blob_size(self, name: str, digest: str) -> int | None:
        """Size of a blob ``name`` holds, or None."""
        if not self._layer_link(name, digest).exists():
            return None
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def link_blob(self, name: str, digest: str) -> None:
        """Let repository ``name`` hold an existing blob (a push's end, or a mount)."""
        link = self._layer_link(name, digest)
        if link.exists():
            # Maybe just renamed by a concurrent request that has not synced it yet.
            _fsync_dir(link.parent)
        else:
            self._write_atomic(link, digest.encode())

    def unlink_blob(self, name: str, digest: str) -> bool:
        """Take a blob out of ``name`` (its bytes stay: no garbage collection); False if absent."""
        return self._unlink(self._layer_link(name, digest))

    def hash_file(self, path: Path, algorithm: str) -> str:
        """The digest of a file's content, read in chunks (call it from a thread)."""
        hasher = hashlib.new(algorithm)
        with path.open("rb") as file:
            while chunk := file.read(_READ_CHUNK):
                hasher.update(chunk)
        return f"{algorithm}:{hasher.hexdigest()}"

    # ------------------------------------------------------------------ uploads

    def create_upload(self, name: str, *, durable: bool = True) -> str:
        """Open an upload session for ``name``; return its id.

        ``durable=False`` for a session whose id is never sent (a monolithic upload): only the
        blob it ends in must survive a crash, and ``commit_upload`` makes that durable.
        """
        self._repository(name)
        upload_id = str(uuid.uuid4())
        directory = self._upload_dir(upload_id)
        # Built in tmp/ and renamed into place: a session exists whole or not at all, even when
        # the disk fills up half-way.
        staging = Path(tempfile.mkdtemp(dir=self._tmp, prefix="u-"))
        try:
            for file_name, content in (("data", b""), ("repository", name.encode())):
                fd = os.open(staging / file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    _write_all(fd, content)
                    if durable:
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
            if durable:
                _fsync_dir(staging)
            os.rename(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if durable:
            _fsync_dir(self._uploads)
        return upload_id

    def upload_data(self, name: str, upload_id: str) -> Path | None:
        """The data file of ``name``'s upload ``upload_id``; None if unknown or another's."""
        directory = self._upload_dir(upload_id)
        try:
            owner = (directory / "repository").read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        data = directory / "data"
        return data if owner == name and data.exists() else None

    def commit_upload(self, name: str, upload_id: str, digest: str) -> None:
        """Move a verified upload into place as blob ``digest`` and link it into ``name``."""
        data = self._upload_dir(upload_id) / "data"
        target = self.blob_path(digest)
        if target.exists():
            data.unlink()
            _fsync_dir(target.parent)  # maybe renamed by a concurrent request, not yet synced
        else:
            # Already synced when its last chunk was acknowledged (then this costs nothing);
            # not when another process, or an older imgctl, wrote it.
            _fsync_file(data)
            self._make_dirs(target.parent)
            os.replace(data, target)
            _fsync_dir(target.parent)
        self.link_blob(name, digest)
        self.remove_upload(upload_id)

    def remove_upload(self, upload_id: str) -> None:
        """Forget an upload session and its bytes."""
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    # ------------------------------------------------------------------ manifests and tags

    def put_manifest(self, name: str, info: ManifestInfo, data: bytes, tag: str | None) -> None:
        """Store manifest bytes, link them into ``name`` and, with ``tag``, point it at them."""
        # Every path is checked before anything is written: a refusal leaves no stray bytes.
        blob = self.blob_path(info.digest)
        link = self._manifest_link(name, info.digest)
        entry: Path | None = None
        if info.subject:
            algorithm, encoded = _split_digest(info.digest)
            entry = self._inside(self._referrers_dir(name, info.subject) / f"{algorithm}-{encoded}")
        tag_path = self._tag_path(name, tag) if tag is not None else None
        if blob.exists():
            _fsync_dir(blob.parent)  # maybe renamed by a concurrent request, not yet synced
        else:
            self._write_atomic(blob, data)
        # The link before the tag, so a tag never points at a manifest the repository lacks.
        self._write_atomic(link, info.to_json())
        if entry is not None:
            self._write_atomic(entry, b"")
        if tag_path is not None:
            self._write_atomic(tag_path, info.digest.encode())

    def manifest_info(self, name: str, digest: str) -> ManifestInfo | None:
        """What ``name`` knows about manifest ``digest``, or None if it does not hold it."""
        try:
            data = self._manifest_link(name, digest).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ManifestInfo.from_json(digest, data)

    def read_manifest(self, info: ManifestInfo) -> bytes | None:
        """A stored manifest's bytes (None if they went missing)."""
        try:
            return self.blob_path(info.digest).read_bytes()
        except FileNotFoundError:
            return None

    def resolve_tag(self, name: str, tag: str) -> str | None:
        """The digest ``tag`` points at, or None."""
        try:
            digest = self._tag_path(name, tag).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return digest if parse_digest(digest) else None

    def tags(self, name: str) -> list[str] | None:
        """Every tag of ``name`` in lexical order (``tag_order``); None if there is no such repo."""
        if not self.repository_exists(name):
            return None
        try:
            entries = os.listdir(self._repository(name) / "_tags")
        except FileNotFoundError:
            return []
        return sorted((entry for entry in entries if valid_tag(entry)), key=tag_order)

    def delete_tag(self, name: str, tag: str) -> bool:
        """Remove one tag (the manifest stays); False if there was no such tag."""
        return self._unlink(self._tag_path(name, tag))

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Remove manifest ``digest`` from ``name`` with the tags pointing at it."""
        link = self._manifest_link(name, digest)
        info = self.manifest_info(name, digest)
        if info is None and not link.exists():
            return False
        # Tags and the referrers entry first, the link last: a crash half-way leaves a manifest
        # with fewer tags, never a tag or referrer without its manifest.
        for tag in self.tags(name) or []:
            if self.resolve_tag(name, tag) == digest:
                self.delete_tag(name, tag)
        if info is not None and info.subject and parse_digest(info.subject):
            algorithm, encoded = _split_digest(digest)
            entry = self._referrers_dir(name, info.subject) / f"{algorithm}-{encoded}"
            self._unlink(self._inside(entry))
        return self._unlink(link)

    def referrers(self, name: str, subject: str) -> list[ManifestInfo]:
        """Manifests of ``name`` whose subject is ``subject``, by digest."""
        try:
            entries = sorted(os.listdir(self._referrers_dir(name, subject)))
        except FileNotFoundError:
            return []
        found: list[ManifestInfo] = []
        for entry in entries:
            digest = entry.replace("-", ":", 1)
            if parse_digest(digest) is None:
                continue
            info = self.manifest_info(name, digest)
            if info is not None:
                found.append(info)
        return found
