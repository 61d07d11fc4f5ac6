"""The S3 requests an SPA sync makes: blocking boto3 calls, run in the sync's worker threads.

Each request translates AWS's errors into imgctl's (``CredentialError``, ``SpaNotFoundError``,
``SpaS3Error``) with a hint saying what to check: credentials, permissions, region, endpoint.
boto3 is imported on first use, not with this module.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from imgctl._internal.aws import (
    aws_endpoint,
    aws_keys,
    boto_error_text,
    botocore_session,
    quiet_botocore_wire_logs,
)
from imgctl.errors import (
    CredentialError,
    ImgctlError,
    SpaNotFoundError,
    SpaS3Error,
)

__all__ = ["S3", "S3Object", "connect"]

_PART_CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)

_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403"})
_REGION_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "PermanentRedirect"}
)
_BUSY_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "503"})
_CREDENTIAL_HINT = (
    "configure AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
    "instance, task or pod role) allowed to read the source bucket and write the destination"
)
_ENDPOINT_HINT = "check the network, AWS_REGION and any AWS_ENDPOINT_URL/AWS_ENDPOINT_URL_S3"


@dataclass(frozen=True, slots=True)
class S3Object:
    """One listed object: its key, size and ETag (quoted, as S3 sends it)."""

    key: str
    size: int
    etag: str


def connect(environ: Mapping[str, str], max_connections: int) -> Any:
    """An S3 client configured from ``environ`` the way the AWS CLI would be (blocking)."""
    try:
        boto3: Any = importlib.import_module("boto3")
        botocore_config: Any = importlib.import_module("botocore.config")
    except ImportError as exc:
        raise ImgctlError("boto3 is not installed", hint="pip install boto3") from exc
    quiet_botocore_wire_logs()
    keys = aws_keys(environ)
    # botocore reads only AWS_DEFAULT_REGION; the CLI and the other SDKs also read AWS_REGION.
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    config = botocore_config.Config(
        connect_timeout=10,
        # S3 answers a large CopyObject only when the copy is done (minutes for gigabytes).
        read_timeout=600,
        max_pool_connections=max_connections,
    )
    # A missing AWS_PROFILE or a bad config file surfaces here, before any request.
    with _translated("client setup"):
        session = boto3.session.Session(botocore_session=botocore_session(environ), **keys)
        return session.client(
            "s3", region_name=region, endpoint_url=aws_endpoint(environ, "s3"), config=config
        )


def _permission_hint(operation: str) -> str:
    if operation == "ListObjectsV2":
        return "the credentials need s3:ListBucket on the bucket"
    if operation == "HeadObject":
        return "the credentials need s3:GetObject on the object"
    return (
        "the credentials need s3:GetObject on the source, s3:PutObject and "
        "s3:AbortMultipartUpload on the destination, and the KMS keys of SSE-KMS buckets"
    )


@contextlib.contextmanager
def _translated(operation: str, bucket: str | None = None, key: str = "") -> Iterator[None]:
    """Raise botocore's errors inside as imgctl errors saying what to check."""
    errors: Any = importlib.import_module("botocore.exceptions")
    try:
        yield
    except errors.ClientError as exc:
        _raise_client_error(exc, operation, bucket, key)
    except errors.BotoCoreError as exc:
        _raise_botocore_error(exc, operation, bucket, key)


def _describe(operation: str, bucket: str | None, key: str) -> str:
    return f"S3 {operation} on s3://{bucket}/{key}" if bucket else f"S3 {operation}"


def _raise_client_error(exc: Any, operation: str, bucket: str | None, key: str) -> NoReturn:
    response: dict[str, Any] = exc.response
    error = response.get("Error") or {}
    code = str(error.get("Code") or "error")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    what = _describe(operation, bucket, key)
    text = boto_error_text(exc)
    if code == "NoSuchBucket":
        # CopyObject names the missing bucket, which may be the source rather than ours.
        missing = str(error.get("BucketName") or bucket or "")
        raise SpaNotFoundError(
            f"S3 bucket {missing!r} does not exist ({operation})",
            bucket=missing,
            hint="check the SPA name and the bucket suffix configured for the environment "
            "(IMGCTL_SPA_<ENV>)",
        ) from exc
    if code in {"NoSuchKey", "404"}:
        raise SpaS3Error(
            f"{what} failed: the object disappeared during the sync ({code})",
            code=code,
            status=status,
            hint="something else changed the bucket; run the promotion again",
        ) from exc
    if code in _CREDENTIAL_CODES:
        raise CredentialError(
            f"{what}: S3 rejected the AWS credentials ({code})",
            hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or the "
            "profile (session tokens expire)",
        ) from exc
    if code in _DENIED_CODES:
        hint = _permission_hint(operation)
    elif code in _REGION_CODES:
        hint = "the bucket is in another region: set AWS_REGION to it"
    elif code == "PreconditionFailed":
        hint = "the source object changed during the copy; run the promotion again"
    elif code in _BUSY_CODES:
        hint = "S3 is throttling or unavailable; try again later or with less concurrency"
    else:
        hint = f"check the buckets, {_ENDPOINT_HINT}"
    raise SpaS3Error(f"{what} failed: {text}", code=code, status=status, hint=hint) from exc


def _raise_botocore_error(exc: Any, operation: str, bucket: str | None, key: str) -> NoReturn:
    errors: Any = importlib.import_module("botocore.exceptions")
    text = boto_error_text(exc)
    credential_errors = (
        errors.NoCredentialsError,
        errors.PartialCredentialsError,
        errors.CredentialRetrievalError,
        errors.ProfileNotFound,
        errors.TokenRetrievalError,
    )
    if isinstance(exc, credential_errors):
        raise CredentialError(
            f"no usable AWS credentials for S3 ({text})", hint=_CREDENTIAL_HINT
        ) from exc
    what = _describe(operation, bucket, key)
    if isinstance(exc, errors.ConnectionError | errors.HTTPClientError):
        raise SpaS3Error(f"cannot reach S3: {what} failed: {text}", hint=_ENDPOINT_HINT) from exc
    raise SpaS3Error(f"{what} failed: {text}", hint=_ENDPOINT_HINT) from exc


class S3:
    """The S3 requests a sync makes, each translating AWS errors into imgctl errors."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def list_objects(self, bucket: str, prefix: str, page_size: int) -> dict[str, S3Object]:
        """Every object under ``prefix``, by key, following continuation tokens."""
        found: dict[str, S3Object] = {}
        with _translated("ListObjectsV2", bucket, prefix):
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
            )
            for page in pages:
                for item in page.get("Contents") or ():
                    key = item["Key"]
                    found[key] = S3Object(key, int(item["Size"]), str(item["ETag"]))
        return found

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject's answer; None when the object does not exist."""
        try:
            with _translated("HeadObject", bucket, key):
                return dict(self._client.head_object(Bucket=bucket, Key=key))
        except SpaS3Error as exc:
            if exc.code in {"404", "NoSuchKey"}:
                return None
            raise

    def copy(self, source: str, destination: str, key: str) -> None:
        """CopyObject keeping the source's content type, headers, metadata and tags."""
        with _translated("CopyObject", destination, key):
            self._client.copy_object(
                Bucket=destination,
                Key=key,
                CopySource={"Bucket": source, "Key": key},
                MetadataDirective="COPY",
            )

    def copy_replacing(
        self, source: str, destination: str, key: str, etag: str, attributes: dict[str, Any]
    ) -> None:
        """CopyObject of exactly the source version ``etag``, with ``attributes`` set anew."""
        with _translated("CopyObject", destination, key):
            self._client.copy_object(
                Bucket=destination,
                Key=key,
                CopySource={"Bucket": source, "Key": key},
                CopySourceIfMatch=etag,
                MetadataDirective="REPLACE",
                **attributes,
            )

    def create_upload(self, destination: str, key: str, attributes: dict[str, Any]) -> str:
        """CreateMultipartUpload; the upload id."""
        with _translated("CreateMultipartUpload", destination, key):
            answer = self._client.create_multipart_upload(Bucket=destination, Key=key, **attributes)
        return str(answer["UploadId"])

    def copy_part(
        self,
        source: str,
        destination: str,
        key: str,
        etag: str,
        upload_id: str,
        number: int,
        first: int,
        last: int,
    ) -> dict[str, Any]:
        """UploadPartCopy of bytes ``first``..``last`` of source version ``etag``; the part."""
        with _translated("UploadPartCopy", destination, key):
            answer = self._client.upload_part_copy(
                Bucket=destination,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": source, "Key": key},
                CopySourceRange=f"bytes={first}-{last}",
                # Every part must come from the same version of the source object.
                CopySourceIfMatch=etag,
            )
        result = answer["CopyPartResult"]
        part = {"PartNumber": number, "ETag": result["ETag"]}
        part.update({name: result[name] for name in _PART_CHECKSUMS if result.get(name)})
        return part

    def complete_upload(
        self, destination: str, key: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        """CompleteMultipartUpload."""
        with _translated("CompleteMultipartUpload", destination, key):
            self._client.complete_multipart_upload(
                Bucket=destination, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )

    def abort_upload(self, destination: str, key: str, upload_id: str) -> None:
        """AbortMultipartUpload."""
        with _translated("AbortMultipartUpload", destination, key):
            self._client.abort_multipart_upload(Bucket=destination, Key=key, UploadId=upload_id)
