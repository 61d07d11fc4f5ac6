"""SPA promotion (imgctl.promotion.spa) against moto's real standalone S3 server, path-style."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from imgctl.errors import (
    CredentialError,
    InvalidSpaError,
    SpaNotFoundError,
    SpaS3Error,
    UsageError,
)
from imgctl.promotion import spa
from imgctl.promotion.spa import (
    SOURCE_ETAG_METADATA_KEY,
    SpaRef,
    SpaSyncResult,
    bucket_for,
    is_spa_reference,
    sync_spa,
)

from ..support.moto import AwsProxy, MotoServer, free_port

MIB = 1024**2
AWS_KEY_ID = "AKIAIMGCTLSPATEST001"
AWS_SECRET = "spa-secret-never-print-3e9d"
AWS_SESSION = "spa-session-never-print-51c0"
DEV, PROD = "dev-01", "prod-01"


# ------------------------------------------------------------------------------------------
# References and bucket names (no S3 at all)


def test_parse_and_str_round_trip() -> None:
    ref = SpaRef.parse("spa:my-dashboard:v0.1.42")
    assert ref == SpaRef("my-dashboard", "v0.1.42")
    assert str(ref) == "spa:my-dashboard:v0.1.42"
    assert SpaRef.parse("spa:a.b-c1:1.0.0+build.7_rc-1") == SpaRef("a.b-c1", "1.0.0+build.7_rc-1")
    assert SpaRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("my-dashboard:v1", "scheme"),
        ("SPA:app:v1", "scheme"),
        ("spa:app", "version"),
        ("spa:app:", "version"),
        ("spa:app:v1/evil", "version"),
        ("spa:app:.", "version"),
        ("spa:app:..", "version"),
        ("spa:app:v1\n", "version"),
        ("spa:app:v1\x00", "version"),
        ("spa:app:" + "v" * 256, "version"),
        ("spa::v1", "name"),
        ("spa:My-App:v1", "name"),
        ("spa:app_x:v1", "name"),
        ("spa:a..b:v1", "name"),
        ("spa:a/b:v1", "name"),
        ("spa:../b:v1", "name"),
        ("spa:-app:v1", "name"),
        ("spa:app.:v1", "name"),
        ("spa:a.-b:v1", "name"),
        ("spa:xn--app:v1", "name"),
        ("spa:sthree-app:v1", "name"),
        ("spa:" + "a" * 62 + ":v1", "name"),
    ],
)
def test_parse_rejects_naming_the_part(value: str, part: str) -> None:
    with pytest.raises(InvalidSpaError) as caught:
        SpaRef.parse(value)
    error = caught.value
    assert isinstance(error, UsageError)
    assert isinstance(error, ValueError)
    assert error.part == part
    if part != "scheme":
        assert f": {part} " in error.message
    assert "spa:<name>:<version>" in str(error)


def test_refs_built_directly_are_validated_too() -> None:
    with pytest.raises(InvalidSpaError, match="name"):
        SpaRef("..", "v1")
    with pytest.raises(InvalidSpaError, match="version"):
        SpaRef("app", "../v1")


def test_long_hostile_input_is_cut_short_in_the_message() -> None:
    with pytest.raises(InvalidSpaError) as caught:
        SpaRef.parse("spa:app:" + "x" * 100_000)
    assert len(str(caught.value)) < 500


def test_is_spa_reference() -> None:
    assert is_spa_reference("spa:app:v1")
    assert is_spa_reference("spa:")
    assert not is_spa_reference("app:v1")
    assert not is_spa_reference("registry.example.com/spa:v1")


@pytest.mark.parametrize(
    ("name", "suffix", "bucket"),
    [
        ("my-dashboard", "dev-01", "my-dashboard-dev-01"),
        ("a", "b", "a-b"),
        ("web.app", "prod.eu", "web.app-prod.eu"),
        ("a" * 30, "b" * 32, "a" * 30 + "-" + "b" * 32),
    ],
)
def test_bucket_for(name: str, suffix: str, bucket: str) -> None:
    assert bucket_for(name, suffix) == bucket


@pytest.mark.parametrize(
    ("name", "suffix", "part"),
    [
        ("app", "", "suffix"),
        ("app", "Prod", "suffix"),
        ("app", "dev/01", "suffix"),
        ("app", "a..b", "suffix"),
        ("app", "-dev", "suffix"),
        ("app", "dev-", "suffix"),
        ("app", "dev_01", "suffix"),
        ("app", "dev.-01", "suffix"),
        ("app", "x" * 60, "bucket"),
        ("app", "s3alias", "bucket"),
        ("app", "x--ol-s3", "bucket"),
        ("app", "x--x-s3", "bucket"),
        ("app", "x.mrap", "bucket"),
        ("App", "dev", "name"),
        ("", "dev", "name"),
        ("xn--app", "dev", "name"),
        ("amzn-s3-demo-app", "dev", "name"),
        ("a..b", "dev", "name"),
    ],
)
def test_bucket_for_rejects(name: str, suffix: str, part: str) -> None:
    with pytest.raises(InvalidSpaError) as caught:
        bucket_for(name, suffix)
    assert caught.value.part == part


def test_importing_the_module_does_not_import_boto3() -> None:
    code = "import sys, imgctl.promotion.spa; print('boto3' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------------
# Syncing against moto


@pytest.fixture(autouse=True)
def process_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore also reads the process environment: keep this machine's AWS setup out of it."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "IMGCTL_")) or name.lower() in {
            "http_proxy",
            "https_proxy",
            "all_proxy",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(moto: MotoServer) -> Any:
    """A plain boto3 client to set up and inspect buckets."""
    return boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def aws_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AWS config file asking for path-style addressing, as one would for a MinIO or moto."""
    path = tmp_path_factory.mktemp("aws") / "config"
    path.write_text("[default]\ns3 =\n    addressing_style = path\n")
    return path


def aws_env(endpoint: str, aws_config: Path, **extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(aws_config),
        **extra,
    }


@pytest.fixture
def env(moto: MotoServer, aws_config: Path) -> dict[str, str]:
    return aws_env(moto.url, aws_config)


@dataclass
class App:
    """A fresh SPA name with its dev and prod buckets."""

    s3: Any
    name: str
    src: str
    dst: str

    def put(self, bucket: str, key: str, body: bytes = b"x", **extra: Any) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        return dict(self.s3.head_object(Bucket=bucket, Key=key))

    def keys(self, bucket: str) -> set[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return {
            item["Key"]
            for page in paginator.paginate(Bucket=bucket)
            for item in page.get("Contents") or ()
        }

    def uploads(self, bucket: str) -> list[Any]:
        return list(self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads") or [])

    def ref(self, version: str = "v1") -> SpaRef:
        return SpaRef(self.name, version)


def new_name() -> str:
    return f"spa-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app(s3: Any) -> App:
    name = new_name()
    made = App(s3, name, f"{name}-{DEV}", f"{name}-{PROD}")
    s3.create_bucket(Bucket=made.src)
    s3.create_bucket(Bucket=made.dst)
    return made


async def test_sync_copies_nested_keys_with_headers_and_metadata(
    app: App, env: dict[str, str]
) -> None:
    files = {
        "v1/index.html": b"<html>app</html>",
        "v1/assets/js/app.js": b"console.log('app')",
        "v1/a/b/c/d.txt": b"deep",
        "v1/with space & unicode \u00e9+plus.txt": b"odd key",
    }
    app.put(
        app.src,
        "v1/index.html",
        files["v1/index.html"],
        ContentType="text/html; charset=utf-8",
        CacheControl="no-cache",
        Metadata={"build": "42", "commit": "abc123"},
    )
    app.put(
        app.src,
        "v1/assets/js/app.js",
        files["v1/assets/js/app.js"],
        ContentType="application/javascript",
        CacheControl="public, max-age=31536000, immutable",
        ContentDisposition="inline",
    )
    for key in ("v1/a/b/c/d.txt", "v1/with space & unicode \u00e9+plus.txt"):
        app.put(app.src, key, files[key])
    # Around the prefix, never part of v1.
    for key in ("v10/index.html", "v1-old/index.html", "v1", "v2/index.html", "index.html"):
        app.put(app.src, key, b"not v1")
    # Already at the destination and not in the source: must survive.
    app.put(app.dst, "v1/only-in-prod.txt", b"keep me")
    app.put(app.dst, "other/keep.txt", b"keep me too")

    progress: list[tuple[int, int]] = []
    result = await sync_spa(
        app.ref(), DEV, PROD, environ=env, on_progress=lambda d, t: progress.append((d, t))
    )

    assert result == SpaSyncResult(
        objects=4,
        copied=4,
        skipped=0,
        bytes_copied=sum(map(len, files.values())),
        source=f"s3://{app.src}/v1/",
        destination=f"s3://{app.dst}/v1/",
    )
    assert app.keys(app.dst) == {*files, "v1/only-in-prod.txt", "other/keep.txt"}
    for key, body in files.items():
        assert app.get(app.dst, key) == body
    index = app.head(app.dst, "v1/index.html")
    assert index["ContentType"] == "text/html; charset=utf-8"
    assert index["CacheControl"] == "no-cache"
    assert index["Metadata"] == {"build": "42", "commit": "abc123"}
    js = app.head(app.dst, "v1/assets/js/app.js")
    assert js["ContentType"] == "application/javascript"
    assert js["CacheControl"] == "public, max-age=31536000, immutable"
    assert js["ContentDisposition"] == "inline"
    assert progress[0] == (0, 4)
    assert progress[-1] == (4, 4)
    assert [done for done, _ in progress] == list(range(5))
    # The source is untouched.
    assert app.keys(app.src) == {
        *files,
        "v10/index.html",
        "v1-old/index.html",
        "v1",
        "v2/index.html",
        "index.html",
    }


async def test_second_sync_skips_and_changed_objects_are_copied_again(
    app: App, env: dict[str, str]
) -> None:
    for index in range(5):
        app.put(app.src, f"v1/file{index}.txt", b"aaaa")
    first = await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert (first.copied, first.skipped) == (5, 0)

    again = await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert (again.objects, again.copied, again.skipped, again.bytes_copied) == (5, 0, 5, 0)

    # Same size, other content: only the ETag tells.
    app.put(app.src, "v1/file1.txt", b"bbbb")
    app.put(app.src, "v1/file3.txt", b"longer now")
    app.put(app.src, "v1/new.txt", b"new")
    changed = await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert (changed.objects, changed.copied, changed.skipped) == (6, 3, 3)
    assert changed.bytes_copied == len(b"bbbb") + len(b"longer now") + len(b"new")
    assert app.get(app.dst, "v1/file1.txt") == b"bbbb"
    assert app.get(app.dst, "v1/file3.txt") == b"longer now"
    assert app.get(app.dst, "v1/new.txt") == b"new"


async def test_multipart_copy_keeps_content_and_attributes_and_resync_skips(
    app: App, env: dict[str, str]
) -> None:
    big = os.urandom(12 * MIB)
    app.put(
        app.src,
        "v1/assets/big.wasm",
        big,
        ContentType="application/wasm",
        CacheControl="max-age=60",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="big.wasm"',
        Metadata={"origin": "ci"},
    )
    app.put(app.src, "v1/index.html", b"small", ContentType="text/html")
    options: dict[str, Any] = {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB}

    result = await sync_spa(app.ref(), DEV, PROD, environ=env, **options)

    assert (result.copied, result.bytes_copied) == (2, len(big) + len(b"small"))
    assert app.get(app.dst, "v1/assets/big.wasm") == big
    head = app.head(app.dst, "v1/assets/big.wasm")
    source_etag = app.head(app.src, "v1/assets/big.wasm")["ETag"]
    assert head["ETag"].endswith('-3"')  # 5 + 5 + 2 MiB, copied server-side in parts
    assert head["ETag"] != source_etag
    assert head["ContentType"] == "application/wasm"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentEncoding"] == "identity"
    assert head["ContentDisposition"] == 'attachment; filename="big.wasm"'
    assert head["Metadata"] == {"origin": "ci", SOURCE_ETAG_METADATA_KEY: source_etag.strip('"')}
    assert app.head(app.dst, "v1/index.html")["ContentType"] == "text/html"
    assert app.uploads(app.dst) == []

    again = await sync_spa(app.ref(), DEV, PROD, environ=env, **options)
    assert (again.copied, again.skipped) == (0, 2)

    bigger = os.urandom(12 * MIB)
    app.put(app.src, "v1/assets/big.wasm", bigger, ContentType="application/wasm")
    changed = await sync_spa(app.ref(), DEV, PROD, environ=env, **options)
    assert (changed.copied, changed.skipped) == (1, 1)
    assert app.get(app.dst, "v1/assets/big.wasm") == bigger


async def test_multipart_uploaded_source_is_marked_so_resync_skips_it(
    app: App, env: dict[str, str]
) -> None:
    # A plain CopyObject of an object uploaded in parts gets a new (single-part) ETag.
    key = "v1/bundle.js"
    upload = app.s3.create_multipart_upload(
        Bucket=app.src, Key=key, ContentType="text/javascript", Metadata={"team": "web"}
    )
    chunks = [os.urandom(5 * MIB), b"tail"]
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        answer = app.s3.upload_part(
            Bucket=app.src, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    app.s3.complete_multipart_upload(
        Bucket=app.src, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    source_etag = app.head(app.src, key)["ETag"]
    assert source_etag.endswith('-2"')

    first = await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert first.copied == 1
    head = app.head(app.dst, key)
    assert head["ETag"] != source_etag
    assert head["ContentType"] == "text/javascript"
    assert head["Metadata"] == {"team": "web", SOURCE_ETAG_METADATA_KEY: source_etag.strip('"')}
    assert app.get(app.dst, key) == b"".join(chunks)

    again = await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert (again.copied, again.skipped) == (0, 1)


def list_requests(moto: MotoServer, bucket: str) -> int:
    return sum(f"GET /{bucket}?list-type=2" in line for line in moto.log.read_text().splitlines())


async def test_pagination_lists_every_page(app: App, env: dict[str, str], moto: MotoServer) -> None:
    keys = {f"v1/assets/chunk-{index:03d}.js" for index in range(45)}
    for key in keys:
        app.put(app.src, key, key.encode())
    app.put(app.src, "v10/assets/chunk-000.js", b"outside")

    result = await sync_spa(app.ref(), DEV, PROD, environ=env, page_size=7, concurrency=4)

    assert (result.objects, result.copied) == (45, 45)
    assert app.keys(app.dst) == keys
    assert app.get(app.dst, "v1/assets/chunk-044.js") == b"v1/assets/chunk-044.js"
    assert list_requests(moto, app.src) >= 7  # 45 objects, 7 a page
    again = await sync_spa(app.ref(), DEV, PROD, environ=env, page_size=7, concurrency=4)
    assert (again.copied, again.skipped) == (0, 45)
    assert list_requests(moto, app.dst) >= 7 + 1


class Wrapped:
    """A boto3 client that counts calls in flight, and fails one operation when asked."""

    def __init__(self, client: Any, fail: str | None = None, fail_part: int | None = None) -> None:
        self._client = client
        self._fail = fail
        self._fail_part = fail_part
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name in {"get_paginator", "meta"}:
            return method

        def call(**kwargs: Any) -> Any:
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                self.threads.add(threading.current_thread().name)
            try:
                if name == self._fail and kwargs.get("PartNumber", self._fail_part) == (
                    self._fail_part
                ):
                    error = {"Code": "InternalError", "Message": "injected failure"}
                    raise ClientError(
                        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}},
                        name,
                    )
                return method(**kwargs)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return call


def wrap_client(monkeypatch: pytest.MonkeyPatch, **options: Any) -> list[Wrapped]:
    made: list[Wrapped] = []
    real = spa._connect

    def connect(environ: Any, max_connections: int) -> Wrapped:
        wrapped = Wrapped(real(environ, max_connections), **options)
        made.append(wrapped)
        return wrapped

    monkeypatch.setattr(spa, "_connect", connect)
    return made


async def test_requests_run_in_a_bounded_pool_of_threads(
    app: App, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(30):
        app.put(app.src, f"v1/{index}.txt", b"x" * index)
    clients = wrap_client(monkeypatch)
    result = await sync_spa(app.ref(), DEV, PROD, environ=env, concurrency=3)
    assert result.copied == 30
    (client,) = clients
    assert 1 <= client.most_in_flight <= 3
    assert client.threads
    assert all(name.startswith("imgctl-spa") for name in client.threads)


@pytest.mark.parametrize(
    ("operation", "part"),
    [("upload_part_copy", 2), ("complete_multipart_upload", None)],
)
async def test_failed_multipart_copy_is_aborted(
    app: App,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    part: int | None,
) -> None:
    app.put(app.src, "v1/big.bin", os.urandom(11 * MIB))
    wrap_client(monkeypatch, fail=operation, fail_part=part)
    with pytest.raises(SpaS3Error) as caught:
        await sync_spa(
            app.ref(), DEV, PROD, environ=env, multipart_threshold=5 * MIB, part_size=5 * MIB
        )
    assert caught.value.code == "InternalError"
    assert caught.value.status == 500
    assert f"s3://{app.dst}/v1/big.bin" in str(caught.value)
    assert "try again later" in str(caught.value)
    assert app.uploads(app.dst) == []
    assert app.keys(app.dst) == set()


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[AwsProxy]:
    """A loopback forwarder to moto that records every request."""
    server = await AwsProxy(moto.url).start()
    yield server
    await server.aclose()


@pytest.mark.parametrize(
    ("source", "destination", "options", "part"),
    [
        ("Dev", PROD, {}, "suffix"),
        (DEV, "prod/01", {}, "suffix"),
        (DEV, "", {}, "suffix"),
        (DEV, "x" * 60, {}, "bucket"),
        (DEV, "x--ol-s3", {}, "bucket"),
        (DEV, DEV, {}, "destination"),
        (DEV, PROD, {"concurrency": 0}, "concurrency"),
        (DEV, PROD, {"part_size": 4 * MIB}, "part_size"),
        (DEV, PROD, {"multipart_threshold": 6 * 1024**3}, "multipart_threshold"),
        (DEV, PROD, {"page_size": 0}, "page_size"),
    ],
)
async def test_invalid_input_is_rejected_before_any_s3_request(
    app: App,
    aws_config: Path,
    proxy: AwsProxy,
    source: str,
    destination: str,
    options: dict[str, Any],
    part: str,
) -> None:
    app.put(app.src, "v1/index.html")
    env = aws_env(proxy.url, aws_config)
    with pytest.raises(InvalidSpaError) as caught:
        await sync_spa(app.ref(), source, destination, environ=env, **options)
    assert caught.value.part == part
    assert proxy.calls == []
    # The same proxy does see requests for a valid sync.
    await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert any(call.service == "s3" for call in proxy.calls)


async def test_empty_version_prefix_is_a_clear_error(app: App, env: dict[str, str]) -> None:
    app.put(app.src, "v10/index.html")
    app.put(app.src, "v1-old/index.html")
    with pytest.raises(SpaNotFoundError) as caught:
        await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert caught.value.message == f"no objects under s3://{app.src}/v1/"
    assert caught.value.bucket == app.src
    assert app.keys(app.dst) == set()


async def test_missing_source_bucket_is_named(s3: Any, env: dict[str, str]) -> None:
    name = new_name()
    s3.create_bucket(Bucket=f"{name}-{PROD}")
    with pytest.raises(SpaNotFoundError) as caught:
        await sync_spa(SpaRef(name, "v1"), DEV, PROD, environ=env)
    assert caught.value.bucket == f"{name}-{DEV}"
    assert f"'{name}-{DEV}' does not exist" in str(caught.value)
    assert "IMGCTL_SPA_" in str(caught.value)


async def test_missing_destination_bucket_is_named_and_nothing_is_created(
    s3: Any, env: dict[str, str]
) -> None:
    name = new_name()
    s3.create_bucket(Bucket=f"{name}-{DEV}")
    s3.put_object(Bucket=f"{name}-{DEV}", Key="v1/index.html", Body=b"x")
    with pytest.raises(SpaNotFoundError) as caught:
        await sync_spa(SpaRef(name, "v1"), DEV, PROD, environ=env)
    assert caught.value.bucket == f"{name}-{PROD}"
    assert f"'{name}-{PROD}' does not exist" in str(caught.value)
    buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert f"{name}-{PROD}" not in buckets


def assert_secret_free(error: BaseException) -> None:
    for secret in (AWS_SECRET, AWS_SESSION):
        assert secret not in str(error)
        assert secret not in repr(error)


async def test_denied_request_names_the_code_and_permission(
    app: App, aws_config: Path, proxy: AwsProxy
) -> None:
    proxy.fail_next.append((403, {"message": "denied"}))
    env = aws_env(proxy.url, aws_config, AWS_MAX_ATTEMPTS="1")
    with pytest.raises(SpaS3Error) as caught:
        await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert caught.value.status == 403
    assert caught.value.code is not None
    assert caught.value.code in str(caught.value)
    assert f"ListObjectsV2 on s3://{app.src}/v1/" in str(caught.value)
    assert "s3:ListBucket" in str(caught.value)
    assert_secret_free(caught.value)


async def test_unreachable_endpoint_is_a_clear_error_without_secrets(
    app: App, aws_config: Path
) -> None:
    env = aws_env(f"http://127.0.0.1:{free_port()}", aws_config, AWS_MAX_ATTEMPTS="1")
    with pytest.raises(SpaS3Error) as caught:
        await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert "cannot reach S3" in str(caught.value)
    assert "AWS_ENDPOINT_URL" in str(caught.value)
    assert_secret_free(caught.value)


async def test_half_set_static_keys_are_a_credential_error(
    app: App, env: dict[str, str], proxy: AwsProxy
) -> None:
    broken = {**env, "AWS_ENDPOINT_URL": proxy.url}
    del broken["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(CredentialError, match="AWS_SECRET_ACCESS_KEY is not") as caught:
        await sync_spa(app.ref(), DEV, PROD, environ=broken)
    assert "IMGCTL_ENABLE_IAAS_AUTH" not in str(caught.value)
    assert proxy.calls == []


@pytest.mark.parametrize("profile", [None, "no-such-profile"])
async def test_missing_credentials_are_a_credential_error_before_any_request(
    app: App, aws_config: Path, proxy: AwsProxy, profile: str | None
) -> None:
    env = {"AWS_ENDPOINT_URL": proxy.url, "AWS_REGION": "us-east-1"}
    env["AWS_CONFIG_FILE"] = str(aws_config)
    if profile is not None:
        env["AWS_PROFILE"] = profile
    with pytest.raises(CredentialError) as caught:
        await sync_spa(app.ref(), DEV, PROD, environ=env)
    assert "AWS" in str(caught.value)
    if profile is not None:
        assert profile in str(caught.value)
    assert proxy.calls == []
