"""Static web bundles (SPA) promoted between environment buckets on S3, server-side.

``spa:<name>:<version>`` names the objects under ``s3://<name>-<suffix>/<version>/``, where each
environment has its own bucket suffix. Promoting copies every object under the version prefix of
the source bucket to the same key in the destination bucket, like ``aws s3 sync`` but entirely
server-side: CopyObject, or UploadPartCopy above a threshold, so no byte passes through imgctl.
Objects already at the destination with the same size and ETag are skipped; nothing at the
destination is ever deleted.

A copy that S3 writes as a new object (multipart copy, or a copy of a multipart-uploaded object)
gets a new ETag, so the source ETag is kept in the destination object's user metadata under
``imgctl-source-etag`` and compared too: a second promotion skips those objects as well.

Every name and option is validated before the first S3 request. boto3 is synchronous and slow to
import: it is imported on first use and called in a bounded pool of worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from imgctl.errors import (
    ImgctlError,
    InvalidSpaError,
    SpaNotFoundError,
    SpaS3Error,
)
from imgctl.promotion._s3 import S3, S3Object

# sync_spa calls the client factory by this name: the tests wrap it to count requests.
from imgctl.promotion._s3 import connect as _connect

__all__ = [
    "SOURCE_ETAG_METADATA_KEY",
    "SPA_SCHEME",
    "SpaRef",
    "SpaSyncResult",
    "bucket_for",
    "is_spa_reference",
    "sync_spa",
]

SPA_SCHEME = "spa:"
SOURCE_ETAG_METADATA_KEY = "imgctl-source-etag"

_MIB = 1024**2
_GIB = 1024**3
# S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them, and
# CopyObject copies at most 5 GiB.
_MIN_PART_SIZE = 5 * _MIB
_MAX_PART_SIZE = 5 * _GIB
_MAX_PARTS = 10_000
_MAX_COPY_OBJECT_SIZE = 5 * _GIB
_MAX_VERSION_LENGTH = 255
_MAX_SHOWN = 200

# Attributes a copy that does not use MetadataDirective=COPY must pass on itself (HeadObject name).
_COPIED_ATTRIBUTES = (
    "ContentType",
    "CacheControl",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "WebsiteRedirectLocation",
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_IP_ADDRESS = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

_FORM_HINT = "the form is spa:<name>:<version>, e.g. spa:my-dashboard:v0.1.42"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _shown(value: str) -> str:
    """``value`` quoted for a message, cut short so a hostile input cannot flood a log."""
    if len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN]) + "..."
    return repr(value)


def _label_problem(label: str) -> str | None:
    """Why ``label`` cannot be part of a bucket name (None when it can)."""
    if not label:
        return "is empty"
    if "/" in label:
        return "must not contain '/'"
    if ".." in label:
        return "must not contain '..'"
    if _LABEL.fullmatch(label) is None:
        return (
            "must be lowercase letters, digits, hyphens and dots, "
            "starting and ending with a letter or digit"
        )
    # A DNS label (virtual-hosted addressing) cannot start or end with a hyphen.
    if ".-" in label or "-." in label:
        return "must not have a hyphen next to a dot"
    return None


def _name_problem(name: str) -> str | None:
    problem = _label_problem(name)
    if problem is not None:
        return problem
    # The name starts the bucket name and leaves room for "-" and a one-character suffix.
    if len(name) > 61:
        return "is longer than 61 characters (the bucket name would exceed 63)"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with {prefix!r} (reserved by S3)"
    return None


def _version_problem(version: str) -> str | None:
    if not version:
        return "is empty"
    if len(version) > _MAX_VERSION_LENGTH:
        return f"is longer than {_MAX_VERSION_LENGTH} characters"
    if "/" in version:
        return "must not contain '/'"
    if version in {".", ".."}:
        return "must not be '.' or '..'"
    if not version.isprintable():
        return "must contain only printable characters"
    return None


@dataclass(frozen=True, slots=True)
class SpaRef:
    """A static web bundle version: ``spa:<name>:<version>``, validated on construction."""

    name: str
    version: str

    def __post_init__(self) -> None:
        for part, problem in (
            ("name", _name_problem(self.name)),
            ("version", _version_problem(self.version)),
        ):
            if problem is not None:
                raise InvalidSpaError(
                    f"invalid SPA reference {_shown(str(self))}: {part} {problem}",
                    part=part,
                    hint=_FORM_HINT,
                )

    @classmethod
    def parse(cls, value: str) -> SpaRef:
        """Parse ``spa:<name>:<version>``; InvalidSpaError naming the part that is wrong."""
        if not is_spa_reference(value):
            raise InvalidSpaError(
                f"invalid SPA reference {_shown(value)}: must start with {SPA_SCHEME!r}",
                part="scheme",
                hint=_FORM_HINT,
            )
        name, colon, version = value[len(SPA_SCHEME) :].partition(":")
        if not colon:
            raise InvalidSpaError(
                f"invalid SPA reference {_shown(value)}: version is missing",
                part="version",
                hint=_FORM_HINT,
            )
        return cls(name, version)

    def __str__(self) -> str:
        return f"{SPA_SCHEME}{self.name}:{self.version}"


def is_spa_reference(value: str) -> bool:
    """True when ``value`` is meant as an SPA reference (starts with ``spa:``), valid or not."""
    return value.startswith(SPA_SCHEME)


def bucket_for(name: str, suffix: str) -> str:
    """The bucket ``<name>-<suffix>``, checked against S3's bucket naming rules."""
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidSpaError(f"invalid SPA name {_shown(name)}: {problem}", part="name")
    problem = _label_problem(suffix)
    if problem is not None:
        raise InvalidSpaError(
            f"invalid bucket suffix {_shown(suffix)}: {problem}",
            part="suffix",
            hint="check the bucket suffix configured for the environment (IMGCTL_SPA_<ENV>)",
        )
    bucket = f"{name}-{suffix}"
    problem = None
    if len(bucket) > 63:
        problem = "is longer than 63 characters"
    elif _IP_ADDRESS.fullmatch(bucket):
        problem = "must not look like an IP address"
    else:
        for reserved in _RESERVED_SUFFIXES:
            if bucket.endswith(reserved):
                problem = f"must not end with {reserved!r} (reserved by S3)"
    if problem is not None:
        raise InvalidSpaError(f"invalid bucket name {_shown(bucket)}: {problem}", part="bucket")
    return bucket


@dataclass(frozen=True, slots=True)
class SpaSyncResult:
    """What a sync did; ``source`` and ``destination`` as ``s3://bucket/version/``."""

    objects: int
    copied: int
    skipped: int
    bytes_copied: int
    source: str
    destination: str


def _bare_etag(etag: str) -> str:
    return etag.strip('"')


def _is_multipart_etag(etag: str) -> bool:
    # A multipart upload's ETag is "<md5 of part md5s>-<parts>"; a copy never reproduces it.
    return "-" in etag


def _attributes_of(head: Mapping[str, Any], source_etag: str) -> dict[str, Any]:
    """Content headers and user metadata of a source object, marked with its ETag."""
    attributes = {name: head[name] for name in _COPIED_ATTRIBUTES if head.get(name)}
    metadata = dict(head.get("Metadata") or {})
    metadata[SOURCE_ETAG_METADATA_KEY] = _bare_etag(source_etag)
    attributes["Metadata"] = metadata
    return attributes


# --------------------------------------------------------------------------------------------
# The sync


def _check_options(
    concurrency: int, multipart_threshold: int, part_size: int, page_size: int
) -> None:
    checks = (
        ("concurrency", concurrency, 1, 1024),
        ("multipart_threshold", multipart_threshold, 0, _MAX_COPY_OBJECT_SIZE),
        ("part_size", part_size, _MIN_PART_SIZE, _MAX_PART_SIZE),
        ("page_size", page_size, 1, 1000),
    )
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise InvalidSpaError(
                f"{name}={value} is out of range (from {low} to {high})", part=name
            )


class _Sync:
    """One sync: its buckets, copy options and worker threads."""

    def __init__(
        self,
        s3: S3,
        executor: ThreadPoolExecutor,
        source: str,
        destination: str,
        multipart_threshold: int,
        part_size: int,
    ) -> None:
        self.s3 = s3
        self.executor = executor
        self.source = source
        self.destination = destination
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def up_to_date(self, source: S3Object, existing: S3Object | None) -> bool:
        """Whether the destination object already holds the source's content."""
        if existing is None or existing.size != source.size:
            return False
        if existing.etag == source.etag:
            return True
        head = await self.run(self.s3.head, self.destination, source.key)
        if head is None:
            return False
        marker = (head.get("Metadata") or {}).get(SOURCE_ETAG_METADATA_KEY)
        return marker == _bare_etag(source.etag)

    async def sync_object(self, source: S3Object, existing: S3Object | None) -> int | None:
        """Copy one object unless it is up to date; the bytes copied, None when skipped."""
        if await self.up_to_date(source, existing):
            return None
        if source.size <= self.multipart_threshold and not _is_multipart_etag(source.etag):
            await self.run(self.s3.copy, self.source, self.destination, source.key)
            return source.size
        head = await self.run(self.s3.head, self.source, source.key)
        if head is None:
            raise SpaS3Error(
                f"s3://{self.source}/{source.key} disappeared during the sync",
                code="404",
                hint="something else changed the bucket; run the promotion again",
            )
        # The source may have changed since it was listed: copy what is there now, consistently.
        etag = str(head["ETag"])
        size = int(head["ContentLength"])
        attributes = _attributes_of(head, etag)
        if size <= self.multipart_threshold:
            await self.run(
                self.s3.copy_replacing, self.source, self.destination, source.key, etag, attributes
            )
        else:
            await self.copy_multipart(source.key, etag, size, attributes)
        return size

    async def copy_multipart(
        self, key: str, etag: str, size: int, attributes: dict[str, Any]
    ) -> None:
        part_size = max(self.part_size, math.ceil(size / _MAX_PARTS))
        upload_id = await self.run(self.s3.create_upload, self.destination, key, attributes)
        try:
            copies = [
                self.run(
                    self.s3.copy_part,
                    self.source,
                    self.destination,
                    key,
                    etag,
                    upload_id,
                    number,
                    first,
                    min(first + part_size, size) - 1,
                )
                for number, first in enumerate(range(0, size, part_size), start=1)
            ]
            # Let every part finish before aborting: an abort racing a part copy can leave
            # the part (and its storage cost) behind.
            results = await asyncio.gather(*copies, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            parts = [result for result in results if not isinstance(result, BaseException)]
            await self.run(self.s3.complete_upload, self.destination, key, upload_id, parts)
        except BaseException:
            try:
                await self.run(self.s3.abort_upload, self.destination, key, upload_id)
            except ImgctlError as exc:
                _log.warning(
                    "could not abort multipart upload %s of s3://%s/%s: %s",
                    upload_id,
                    self.destination,
                    key,
                    exc,
                )
            raise


async def sync_spa(
    ref: SpaRef,
    source_suffix: str,
    destination_suffix: str,
    *,
    environ: Mapping[str, str],
    concurrency: int = 16,
    multipart_threshold: int = 5 * _GIB,
    part_size: int = 512 * _MIB,
    page_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> SpaSyncResult:
    """Copy ``s3://<name>-<source>/<version>/`` to the destination bucket, server-side.

    Objects whose destination copy has the same size and ETag (or carries the source ETag in
    ``imgctl-source-etag``) are skipped; nothing is deleted. At most ``concurrency`` S3 requests
    run at once. ``on_progress(done, total)`` counts objects (copied or skipped), from the event
    loop: once with ``done=0`` after listing, then after each object.
    """
    source = bucket_for(ref.name, source_suffix)
    destination = bucket_for(ref.name, destination_suffix)
    if source == destination:
        raise InvalidSpaError(
            f"source and destination are the same bucket {source!r}",
            part="destination",
            hint="promote between two environments with different bucket suffixes",
        )
    _check_options(concurrency, multipart_threshold, part_size, page_size)
    prefix = f"{ref.version}/"
    source_url = f"s3://{source}/{prefix}"
    destination_url = f"s3://{destination}/{prefix}"

    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="imgctl-spa")
    try:
        client = await loop.run_in_executor(executor, _connect, environ, concurrency)
        sync = _Sync(S3(client), executor, source, destination, multipart_threshold, part_size)
        objects = await sync.run(sync.s3.list_objects, source, prefix, page_size)
        if not objects:
            raise SpaNotFoundError(
                f"no objects under {source_url}",
                bucket=source,
                hint=f"check that {ref} was published to the source environment",
            )
        # Listing the destination also proves it exists before anything is copied.
        existing = await sync.run(sync.s3.list_objects, destination, prefix, page_size)

        total = len(objects)
        done = copied = bytes_copied = 0
        failures: list[BaseException] = []
        pending = iter(objects.values())
        if on_progress is not None:
            on_progress(0, total)

        async def worker() -> None:
            nonlocal done, copied, bytes_copied
            for item in pending:
                if failures:
                    return
                try:
                    size = await sync.sync_object(item, existing.get(item.key))
                    done += 1
                    if size is not None:
                        copied += 1
                        bytes_copied += size
                    if on_progress is not None:
                        on_progress(done, total)
                except Exception as exc:
                    # Stop taking work but let the other workers finish theirs: nothing is
                    # left half-copied and no thread outlives the sync.
                    failures.append(exc)
                    return

        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
        if failures:
            raise failures[0]
        return SpaSyncResult(
            objects=total,
            copied=copied,
            skipped=total - copied,
            bytes_copied=bytes_copied,
            source=source_url,
            destination=destination_url,
        )
    finally:
        # Never block the event loop: on success and on failure no work is left, and after a
        # cancellation the threads end with their current request.
        executor.shutdown(wait=False, cancel_futures=True)
