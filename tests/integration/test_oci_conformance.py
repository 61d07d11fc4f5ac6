"""The OCI distribution-spec conformance suite, transcribed: the embedded registry, docker-registry.

Upstream: opencontainers/distribution-spec, ``conformance/`` at tag v1.1.1 (commit
a139cc423184af6078077b9b7ee336eddbd03f8f): 01_pull_test.go, 02_push_test.go,
03_discovery_test.go, 04_management_test.go, with the test data of setup.go and image.go.
Two later upstream corrections of the tag-listing cases are applied, because the v1.1.1 cases
check less than the v1.1.1 text asks:

- 03b7b0b2faf0f431541a3cab6ad9bb0f49a053f4 ("Fix `last` pagination conformance test"): the page
  after ``last`` must not contain ``last`` (v1.1.1 re-checked the previous page).
- a24ca8153dca977c65221b0081a637e3b909d03c ("Update tag list conformance test to verify sort
  order"): ``TESTn`` tags next to ``testn`` and a check of the order. Upstream accepts lexical or
  Go ``sort.Strings`` order there (a later relaxation of the text); spec.md at v1.1.1 says "the
  tags MUST be in lexical order (i.e. case-insensitive alphanumeric order)", and that is what
  is checked here.

Each ``g.Specify`` is one case, with the upstream name; the cases of a target run in upstream
order against one namespace and share the upstream's state (``lastResponse``...), so selecting a
single case runs the ones before it first. Configuration as the upstream defaults
(``OCI_TEST_PULL/PUSH/CONTENT_DISCOVERY/CONTENT_MANAGEMENT=1``, delete manifests before blobs)
plus ``OCI_AUTOMATIC_CROSSMOUNT=false`` (the embedded registry mounts only with ``from``). Cases
behind a ``RunOnlyIf`` on an earlier answer are written for the branch a conforming registry may
take, and assert that branch's outcome ("nonexistent blob" mounts a blob ``from`` does not hold).

Referee: every case runs against Debian's docker-registry 2.8.2 too, except those in
``NOT_REFEREE`` (OCI 1.1 features docker-registry 2.8.2 predates, and its known departures),
which name the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ..support.embedded import start_embedded
from ..support.registry import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# setup.go: errorCodes, the codes a 400 answer may carry.
ERROR_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
}

# setup.go: layerBase64String, a gzipped tarball of one text file (upstream test data).
LAYER = base64.b64decode(
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA"
)
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST_CONTENT = b"blablabla"
EMPTY_LAYER_TAG = "emptylayer"
TEST_TAG = "tagtest0"
ANNOTATION_KEY = "org.opencontainers.conformance.test"
ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def go_json(document: object) -> bytes:
    """Roughly Go's json.MarshalIndent(v, "", "\\t"): the bytes are hashed as they are."""
    return json.dumps(document, indent="\t").encode()


def descriptor(media_type: str, content: bytes, **extra: object) -> dict[str, object]:
    """image.go's descriptor: newUnspecifiedField has no omitempty, so it is null when unset."""
    value: dict[str, object] = {
        "mediaType": media_type,
        "digest": sha256(content),
        "size": len(content),
    }
    value.update(extra)
    value.setdefault("newUnspecifiedField", None)
    return value


@dataclass
class SuiteData:
    """setup.go's init(): one config and manifest per workflow, blobs, referrers artifacts."""

    configs: list[bytes] = field(default_factory=list)
    manifests: list[bytes] = field(default_factory=list)
    empty_layer_manifest: bytes = b""
    blob_a: bytes = b""
    blob_b: bytes = b""
    blob_b_chunk1: bytes = b""
    blob_b_chunk2: bytes = b""
    ref_blob_a: bytes = b"NHL Peanut Butter on my NHL bagel"
    ref_blob_b: bytes = b"NBA Strawberry Jam on my NBA croissant"
    refs: dict[str, bytes] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    dummy_digest: str = sha256(b"hello world")

    @classmethod
    def make(cls) -> SuiteData:
        data = cls()
        letters = string.digits + string.ascii_letters + "-"
        for _ in range(5):
            config = {
                "author": "".join(secrets.choice(letters) for _ in range(16)),
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
            data.configs.append(go_json(config))
        layers = [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", LAYER)]
        for config_bytes in data.configs:
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(
                    OCI_CONFIG,
                    config_bytes,
                    data=base64.b64encode(config_bytes).decode(),
                    newUnspecifiedField=base64.b64encode(b"hello world").decode(),
                ),
                "layers": layers,
            }
            data.manifests.append(go_json(manifest))
        data.empty_layer_manifest = go_json(
            {
                "schemaVersion": 2,
                "config": descriptor(
                    OCI_CONFIG,
                    data.configs[1],
                    data=base64.b64encode(data.configs[1]).decode(),
                    newUnspecifiedField=base64.b64encode(b"hello world").decode(),
                ),
                "layers": [],
            }
        )
        seeded = random.Random(secrets.randbits(63))
        data.blob_a = seeded.randbytes(42)
        data.blob_b = seeded.randbytes(42)
        data.blob_b_chunk1 = data.blob_b[: 42 // 2 + 1]
        data.blob_b_chunk2 = data.blob_b[42 // 2 + 1 :]

        empty = descriptor(OCI_EMPTY, EMPTY_JSON)
        subject4 = descriptor(OCI_MANIFEST, data.manifests[4])
        subject3 = descriptor(OCI_MANIFEST, data.manifests[3])

        def artifact(
            name: str,
            config: dict[str, object],
            layer: dict[str, object],
            subject: dict[str, object],
            annotation: str | None,
            artifact_type: str | None = None,
        ) -> None:
            manifest: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
            if artifact_type:
                manifest["artifactType"] = artifact_type
            manifest.update({"config": config, "layers": [layer], "subject": subject})
            if annotation:
                manifest["annotations"] = {ANNOTATION_KEY: annotation}
            content = go_json(manifest)
            data.refs[name] = content
            if annotation:
                data.annotations[sha256(content)] = annotation

        artifact(
            "a_config",
            descriptor(ARTIFACT_TYPE_A, data.ref_blob_a),
            empty,
            subject4,
            "test config a",
        )
        artifact(
            "b_config",
            descriptor(ARTIFACT_TYPE_B, data.ref_blob_b),
            empty,
            subject4,
            "test config b",
        )
        artifact(
            "a_layer",
            empty,
            descriptor(ARTIFACT_TYPE_A, data.ref_blob_a),
            subject4,
            "test layer a",
            ARTIFACT_TYPE_A,
        )
        artifact(
            "b_layer",
            empty,
            descriptor(ARTIFACT_TYPE_B, data.ref_blob_b),
            subject4,
            "test layer b",
            ARTIFACT_TYPE_B,
        )
        # Like b_layer, for a subject that is never pushed.
        artifact(
            "c_layer",
            empty,
            descriptor(ARTIFACT_TYPE_B, data.ref_blob_b),
            subject3,
            None,
            ARTIFACT_TYPE_B,
        )
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": ARTIFACT_TYPE_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, data.refs["a_config"]),
                descriptor(OCI_MANIFEST, data.refs["a_layer"]),
            ],
            "subject": subject4,
            "annotations": {ANNOTATION_KEY: "test index"},
        }
        data.refs["index"] = go_json(index)
        data.annotations[sha256(data.refs["index"])] = "test index"
        return data


class Client:
    """What reggie does for the suite: a default name in paths, relative Location handling."""

    def __init__(self, host: str, name: str) -> None:
        self.http = httpx.Client(base_url=f"http://{host}", timeout=30)
        self.name = name

    def do(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        url = path.replace("<name>", name or self.name)
        if params:
            url += ("&" if "?" in url else "?") + str(httpx.QueryParams(params))
        content = body if body is not None or method in ("PUT", "POST", "PATCH") else None
        if content is None and method in ("PUT", "POST", "PATCH"):
            content = b""  # Go sends Content-Length: 0 for a PUT/POST/PATCH without a body
        return self.http.request(method, url, headers=headers, content=content)

    @staticmethod
    def relative(response: httpx.Response) -> str:
        """reggie's GetRelativeLocation: the Location's path and query."""
        location = response.headers.get("location", "")
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def push_blob(self, data: bytes) -> httpx.Response:
        """The setups' POST then PUT ?digest= with the blob."""
        start = self.do("POST", "/v2/<name>/blobs/uploads/")
        return self.do(
            "PUT",
            self.relative(start),
            params={"digest": sha256(data)},
            headers={"Content-Type": "application/octet-stream"},
            body=data,
        )

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> httpx.Response:
        return self.do(
            "PUT",
            f"/v2/<name>/manifests/{reference}",
            headers={"Content-Type": media_type},
            body=data,
        )

    def errors(self, response: httpx.Response) -> list[dict[str, Any]]:
        document = response.json()
        assert isinstance(document, dict)
        errors = document["errors"]
        assert isinstance(errors, list)
        return errors


def success(status: int) -> bool:
    return 200 <= status < 300


def deleted_or(status: int, *others: int) -> bool:
    """A teardown delete: 2xx, or one of ``others`` (404, 405)."""
    return success(status) or status in others


@dataclass
class State:
    """The variables the upstream closures share, per target."""

    client: Client
    data: SuiteData
    crossmount: str
    pull_tag: str = ""
    last: httpx.Response | None = None
    prev: httpx.Response | None = None
    empty_layer_ref: str = ""
    tag_list: list[str] = field(default_factory=list)
    num_tags: int = 4
    tag_to_delete: str = ""
    management_tags: int = 0
    blob_delete_allowed: bool = True


Step = Callable[[State], None]


@dataclass(frozen=True)
class Case:
    workflow: str
    context: str
    name: str
    run: Step

    @property
    def id(self) -> str:
        return f"{self.workflow} / {self.context} / {self.name}"


CASES: list[Case] = []


def case(workflow: str, context: str, name: str) -> Callable[[Step], Step]:
    def register(step: Step) -> Step:
        CASES.append(Case(workflow, context, name, step))
        return step

    return register


# ================================================================ 01_pull_test.go

PULL = "Pull"


@case(PULL, "Setup", "Populate registry with test blob (config[0])")
def _pull_setup_blob0(s: State) -> None:
    assert success(s.client.push_blob(s.data.configs[0]).status_code)


@case(PULL, "Setup", "Populate registry with test blob (config[1])")
def _pull_setup_blob1(s: State) -> None:
    assert success(s.client.push_blob(s.data.configs[1]).status_code)


@case(PULL, "Setup", "Populate registry with test layer")
def _pull_setup_layer(s: State) -> None:
    assert success(s.client.push_blob(LAYER).status_code)


@case(PULL, "Setup", "Populate registry with test manifest (tag)")
def _pull_setup_manifest0(s: State) -> None:
    s.pull_tag = TEST_TAG
    response = s.client.put_manifest(s.pull_tag, s.data.manifests[0], OCI_MANIFEST)
    assert success(response.status_code)


@case(PULL, "Setup", "Populate registry with test manifest (digest)")
def _pull_setup_manifest1(s: State) -> None:
    manifest = s.data.manifests[1]
    assert success(s.client.put_manifest(sha256(manifest), manifest, OCI_MANIFEST).status_code)


@case(PULL, "Pull blobs", "HEAD request to nonexistent blob should result in 404 response")
def _pull_head_missing_blob(s: State) -> None:
    response = s.client.do("HEAD", f"/v2/<name>/blobs/{s.data.dummy_digest}")
    assert response.status_code == 404


@case(PULL, "Pull blobs", "HEAD request to existing blob should yield 200")
def _pull_head_blob(s: State) -> None:
    digest = sha256(s.data.configs[0])
    response = s.client.do("HEAD", f"/v2/<name>/blobs/{digest}")
    assert response.status_code == 200
    if header := response.headers.get("docker-content-digest"):
        assert header == digest


@case(PULL, "Pull blobs", "GET nonexistent blob should result in 404 response")
def _pull_get_missing_blob(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/blobs/{s.data.dummy_digest}")
    assert response.status_code == 404


@case(PULL, "Pull blobs", "GET request to existing blob URL should yield 200")
def _pull_get_blob(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/blobs/{sha256(s.data.configs[0])}")
    assert response.status_code == 200


def _manifest_request(s: State, method: str, reference: str) -> httpx.Response:
    return s.client.do(
        method, f"/v2/<name>/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
    )


@case(PULL, "Pull manifests", "HEAD request to nonexistent manifest should return 404")
def _pull_head_missing_manifest(s: State) -> None:
    response = s.client.do("HEAD", f"/v2/<name>/manifests/{NONEXISTENT_MANIFEST}")
    assert response.status_code == 404


@case(PULL, "Pull manifests", "HEAD request to manifest[0] path (digest) should yield 200 response")
def _pull_head_manifest0(s: State) -> None:
    digest = sha256(s.data.manifests[0])
    response = _manifest_request(s, "HEAD", digest)
    assert response.status_code == 200
    if header := response.headers.get("docker-content-digest"):
        assert header == digest


@case(PULL, "Pull manifests", "HEAD request to manifest[1] path (digest) should yield 200 response")
def _pull_head_manifest1(s: State) -> None:
    digest = sha256(s.data.manifests[1])
    response = _manifest_request(s, "HEAD", digest)
    assert response.status_code == 200
    if header := response.headers.get("docker-content-digest"):
        assert header == digest


@case(PULL, "Pull manifests", "HEAD request to manifest path (tag) should yield 200 response")
def _pull_head_manifest_tag(s: State) -> None:
    assert s.pull_tag
    response = _manifest_request(s, "HEAD", s.pull_tag)
    assert response.status_code == 200
    if header := response.headers.get("docker-content-digest"):
        assert header == sha256(s.data.manifests[0])


@case(PULL, "Pull manifests", "GET nonexistent manifest should return 404")
def _pull_get_missing_manifest(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/manifests/{NONEXISTENT_MANIFEST}")
    assert response.status_code == 404


@case(PULL, "Pull manifests", "GET request to manifest[0] path (digest) should yield 200 response")
def _pull_get_manifest0(s: State) -> None:
    assert _manifest_request(s, "GET", sha256(s.data.manifests[0])).status_code == 200


@case(PULL, "Pull manifests", "GET request to manifest[1] path (digest) should yield 200 response")
def _pull_get_manifest1(s: State) -> None:
    assert _manifest_request(s, "GET", sha256(s.data.manifests[1])).status_code == 200


@case(PULL, "Pull manifests", "GET request to manifest path (tag) should yield 200 response")
def _pull_get_manifest_tag(s: State) -> None:
    assert s.pull_tag
    assert _manifest_request(s, "GET", s.pull_tag).status_code == 200


@case(PULL, "Error codes", "400 response body should contain OCI-conforming JSON message")
def _pull_error_codes(s: State) -> None:
    response = s.client.do(
        "GET",
        "/v2/<name>/manifests/sha256:totallywrong",
        headers={"Content-Type": OCI_MANIFEST},
        body=INVALID_MANIFEST_CONTENT,
    )
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        errors = s.client.errors(response)
        assert errors
        assert errors[0]["code"] in ERROR_CODES


@case(PULL, "Teardown", "Delete manifest[0] created in setup")
def _pull_teardown_manifest0(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/manifests/{sha256(s.data.manifests[0])}")
    assert deleted_or(response.status_code, 405)


@case(PULL, "Teardown", "Delete manifest[1] created in setup")
def _pull_teardown_manifest1(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/manifests/{sha256(s.data.manifests[1])}")
    assert deleted_or(response.status_code, 405)


@case(PULL, "Teardown", "Delete config[0] blob created in setup")
def _pull_teardown_config0(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(s.data.configs[0])}")
    assert deleted_or(response.status_code, 404, 405)


@case(PULL, "Teardown", "Delete config[1] blob created in setup")
def _pull_teardown_config1(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(s.data.configs[1])}")
    assert deleted_or(response.status_code, 404, 405)


@case(PULL, "Teardown", "Delete layer blob created in setup")
def _pull_teardown_layer(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(LAYER)}")
    assert deleted_or(response.status_code, 404, 405)


# ================================================================ 02_push_test.go

PUSH = "Push"


@case(PUSH, "Blob Upload Streamed", "PATCH request with blob in body should yield 202 response")
def _push_streamed_patch(s: State) -> None:
    response = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("location")
    response = s.client.do(
        "PATCH",
        s.client.relative(response),
        headers={"Content-Type": "application/octet-stream"},
        body=s.data.blob_a,
    )
    assert response.status_code == 202
    s.last = response


@case(
    PUSH, "Blob Upload Streamed", "PUT request to session URL with digest should yield 201 response"
)
def _push_streamed_put(s: State) -> None:
    assert s.last is not None
    response = s.client.do(
        "PUT",
        s.client.relative(s.last),
        params={"digest": sha256(s.data.blob_a)},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201
    assert response.headers.get("location")


@case(PUSH, "Blob Upload Monolithic", "GET nonexistent blob should result in 404 response")
def _push_get_missing_blob(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/blobs/{s.data.dummy_digest}")
    assert response.status_code == 404


@case(PUSH, "Blob Upload Monolithic", "POST request with digest and blob should yield a 201 or 202")
def _push_monolithic_post(s: State) -> None:
    response = s.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        params={"digest": sha256(s.data.configs[1])},
        headers={"Content-Type": "application/octet-stream"},
        body=s.data.configs[1],
    )
    assert response.headers.get("location")
    assert response.status_code in (201, 202)
    s.last = response


@case(
    PUSH,
    "Blob Upload Monolithic",
    "GET request to blob URL from prior request should yield 200 or 404 based on response code",
)
def _push_monolithic_get(s: State) -> None:
    assert s.last is not None
    response = s.client.do("GET", f"/v2/<name>/blobs/{sha256(s.data.configs[1])}")
    assert response.status_code == (404 if s.last.status_code == 202 else 200)


@case(PUSH, "Blob Upload Monolithic", "POST request should yield a session ID")
def _push_post_session(s: State) -> None:
    response = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    assert response.status_code == 202
    s.last = response


@case(PUSH, "Blob Upload Monolithic", "PUT upload of a blob should yield a 201 Response")
def _push_put_blob(s: State) -> None:
    assert s.last is not None
    response = s.client.do(
        "PUT",
        s.client.relative(s.last),
        params={"digest": sha256(s.data.configs[1])},
        headers={"Content-Type": "application/octet-stream"},
        body=s.data.configs[1],
    )
    assert response.headers.get("location")
    assert response.status_code == 201


@case(PUSH, "Blob Upload Monolithic", "GET request to existing blob should yield 200 response")
def _push_get_blob(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/blobs/{sha256(s.data.configs[1])}")
    assert response.status_code == 200


@case(PUSH, "Blob Upload Monolithic", "PUT upload of a layer blob should yield a 201 Response")
def _push_put_layer(s: State) -> None:
    response = s.client.push_blob(LAYER)
    assert response.headers.get("location")
    assert response.status_code == 201


@case(PUSH, "Blob Upload Monolithic", "GET request to existing layer should yield 200 response")
def _push_get_layer(s: State) -> None:
    assert s.client.do("GET", f"/v2/<name>/blobs/{sha256(LAYER)}").status_code == 200


def _chunk_headers(chunk: bytes, start: int) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
    }


@case(PUSH, "Blob Upload Chunked", "Out-of-order blob upload should return 416")
def _push_chunked_out_of_order(s: State) -> None:
    response = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("location")
    # No OCI-Chunk-Min-Length from either target: the 42-byte blob's chunks are used as they are.
    assert "oci-chunk-min-length" not in response.headers
    chunk2 = s.data.blob_b_chunk2
    response = s.client.do(
        "PATCH",
        s.client.relative(response),
        headers=_chunk_headers(chunk2, len(s.data.blob_b_chunk1)),
        body=chunk2,
    )
    assert response.status_code == 416


@case(PUSH, "Blob Upload Chunked", "PATCH request with first chunk should return 202")
def _push_chunked_first(s: State) -> None:
    response = s.client.do("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("location")
    s.prev = response
    chunk1 = s.data.blob_b_chunk1
    response = s.client.do(
        "PATCH", s.client.relative(response), headers=_chunk_headers(chunk1, 0), body=chunk1
    )
    assert response.status_code == 202
    assert response.headers.get("range") == f"0-{len(chunk1) - 1}"
    s.last = response


@case(PUSH, "Blob Upload Chunked", "Retry previous blob chunk should return 416")
def _push_chunked_retry(s: State) -> None:
    assert s.prev is not None
    chunk1 = s.data.blob_b_chunk1
    response = s.client.do(
        "PATCH", s.client.relative(s.prev), headers=_chunk_headers(chunk1, 0), body=chunk1
    )
    assert response.status_code == 416


@case(
    PUSH,
    "Blob Upload Chunked",
    "Get on stale blob upload should return 204 with a range and location",
)
def _push_chunked_stale_get(s: State) -> None:
    assert s.prev is not None
    response = s.client.do("GET", s.client.relative(s.prev))
    assert response.status_code == 204
    assert response.headers.get("location")
    assert response.headers.get("range") == f"0-{len(s.data.blob_b_chunk1) - 1}"
    s.last = response


@case(PUSH, "Blob Upload Chunked", "PATCH request with second chunk should return 202")
def _push_chunked_second(s: State) -> None:
    assert s.last is not None
    chunk2 = s.data.blob_b_chunk2
    response = s.client.do(
        "PATCH",
        s.client.relative(s.last),
        headers=_chunk_headers(chunk2, len(s.data.blob_b_chunk1)),
        body=chunk2,
    )
    assert response.status_code == 202
    assert response.headers.get("location")
    s.last = response


@case(PUSH, "Blob Upload Chunked", "PUT request with digest should return 201")
def _push_chunked_put(s: State) -> None:
    assert s.last is not None
    response = s.client.do(
        "PUT",
        s.client.relative(s.last),
        params={"digest": sha256(s.data.blob_b)},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201
    assert response.headers.get("location")


CROSS = "Cross-Repository Blob Mount"


@case(PUSH, CROSS, "Cross-mounting of a blob without the from argument should yield session id")
def _push_mount_without_from(s: State) -> None:
    response = s.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=s.crossmount,
        params={"mount": s.data.dummy_digest},
    )
    assert response.status_code == 202
    assert response.headers.get("location")


@case(PUSH, CROSS, "POST request to mount another repository's blob should return 201 or 202")
def _push_mount(s: State) -> None:
    response = s.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=s.crossmount,
        params={"mount": sha256(s.data.blob_a), "from": s.client.name},
    )
    assert response.status_code in (201, 202)
    s.last = response


@case(PUSH, CROSS, "GET request to test digest within cross-mount namespace should return 200")
def _push_mount_get(s: State) -> None:
    assert s.last is not None
    # RunOnlyIf(201): both targets mount a blob that "from" holds.
    assert s.last.status_code == 201
    digest = sha256(s.data.blob_a)
    assert s.client.relative(s.last) == f"/v2/{s.crossmount}/blobs/{digest}"
    assert s.client.do("GET", s.client.relative(s.last)).status_code == 200


@case(PUSH, CROSS, "Cross-mounting of nonexistent blob should yield session id")
def _push_mount_nonexistent(s: State) -> None:
    # Upstream checks this only when the mount above answered 202; here the branch is taken
    # on purpose, with a blob that "from" does not hold.
    response = s.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=s.crossmount,
        params={"mount": s.data.dummy_digest, "from": s.client.name},
    )
    assert response.status_code == 202
    assert s.client.relative(response).startswith(f"/v2/{s.crossmount}/blobs/uploads/")


@case(
    PUSH,
    CROSS,
    "Cross-mounting without from, and automatic content discovery disabled should return a 202",
)
def _push_mount_no_automatic(s: State) -> None:
    response = s.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=s.crossmount,
        params={"mount": sha256(s.data.blob_a)},
    )
    assert response.status_code == 202


@case(PUSH, "Manifest Upload", "GET nonexistent manifest should return 404")
def _push_get_missing_manifest(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/manifests/{NONEXISTENT_MANIFEST}")
    assert response.status_code == 404


@case(PUSH, "Manifest Upload", "PUT should accept a manifest upload")
def _push_put_manifests(s: State) -> None:
    for i in range(4):
        response = s.client.put_manifest(f"test{i}", s.data.manifests[1], OCI_MANIFEST)
        assert response.headers.get("location")
        assert response.status_code == 201


@case(PUSH, "Manifest Upload", "Registry should accept a manifest upload with no layers")
def _push_put_empty_layers(s: State) -> None:
    response = s.client.put_manifest(EMPTY_LAYER_TAG, s.data.empty_layer_manifest, OCI_MANIFEST)
    # Upstream only warns on refusal; both targets accept it, so it is required here.
    assert response.status_code == 201
    s.empty_layer_ref = response.headers.get("location", "")
    assert s.empty_layer_ref


@case(PUSH, "Manifest Upload", "GET request to manifest URL (digest) should yield 200 response")
def _push_get_manifest(s: State) -> None:
    assert _manifest_request(s, "GET", sha256(s.data.manifests[1])).status_code == 200


@case(PUSH, "Teardown", "Delete manifest created in tests")
def _push_teardown_manifest(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/manifests/{sha256(s.data.manifests[1])}")
    assert deleted_or(response.status_code, 405)
    if s.empty_layer_ref:
        digest = sha256(s.data.empty_layer_manifest)
        response = s.client.do("DELETE", f"/v2/<name>/manifests/{digest}")
        assert deleted_or(response.status_code, 405)


@case(PUSH, "Teardown", "Delete config blob created in tests")
def _push_teardown_config(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(s.data.configs[1])}")
    assert deleted_or(response.status_code, 404, 405)


@case(PUSH, "Teardown", "Delete layer blob created in setup")
def _push_teardown_layer(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(LAYER)}")
    assert deleted_or(response.status_code, 404, 405)


# ================================================================ 03_discovery_test.go

DISCOVERY = "Content Discovery"


@case(DISCOVERY, "Setup", "Populate registry with test blob")
def _discovery_setup_blob(s: State) -> None:
    assert success(s.client.push_blob(s.data.configs[2]).status_code)


@case(DISCOVERY, "Setup", "Populate registry with test layer")
def _discovery_setup_layer(s: State) -> None:
    assert success(s.client.push_blob(LAYER).status_code)


@case(DISCOVERY, "Setup", "Populate registry with test tags")
def _discovery_setup_tags(s: State) -> None:
    # a24ca81: testN and TESTN, so that the order of the listing matters.
    for i in range(s.num_tags):
        for tag in (f"test{i}", f"TEST{i}"):
            response = s.client.put_manifest(tag, s.data.manifests[2], OCI_MANIFEST)
            assert success(response.status_code)
    s.tag_list = s.client.do("GET", "/v2/<name>/tags/list").json().get("tags") or []


@case(DISCOVERY, "Setup", "References setup")
def _discovery_setup_references(s: State) -> None:
    data, client = s.data, s.client
    assert sha256(EMPTY_JSON) == EMPTY_JSON_DIGEST
    assert success(client.push_blob(EMPTY_JSON).status_code)
    # A referrer's blob before the subject is pushed.
    assert success(client.push_blob(data.ref_blob_a).status_code)
    subject = sha256(data.manifests[4])
    for name, media_type in (("a_config", OCI_MANIFEST), ("a_layer", OCI_MANIFEST)):
        response = client.put_manifest(sha256(data.refs[name]), data.refs[name], media_type)
        assert success(response.status_code), (name, response.text)
        assert response.headers.get("oci-subject") == subject, name
    response = client.put_manifest(sha256(data.refs["index"]), data.refs["index"], OCI_INDEX)
    assert success(response.status_code), response.text
    assert response.headers.get("oci-subject") == subject
    assert success(client.push_blob(data.configs[4]).status_code)
    assert success(client.push_blob(LAYER).status_code)
    assert success(client.put_manifest(TEST_TAG, data.manifests[4], OCI_MANIFEST).status_code)
    # A referrer's blob after the subject is pushed.
    assert success(client.push_blob(data.ref_blob_b).status_code)
    for name in ("b_config", "b_layer"):
        response = client.put_manifest(sha256(data.refs[name]), data.refs[name], OCI_MANIFEST)
        assert success(response.status_code), (name, response.text)
        assert response.headers.get("oci-subject") == subject, name
    # A referrer of a subject that is never pushed.
    response = client.put_manifest(sha256(data.refs["c_layer"]), data.refs["c_layer"], OCI_MANIFEST)
    assert success(response.status_code), response.text
    assert response.headers.get("oci-subject") == sha256(data.manifests[3])


LISTING_TAGS = "Test content discovery endpoints (listing tags)"


@case(DISCOVERY, LISTING_TAGS, "GET request to list tags should yield 200 response and be sorted")
def _discovery_list_tags(s: State) -> None:
    response = s.client.do("GET", "/v2/<name>/tags/list")
    assert response.status_code == 200
    s.tag_list = response.json().get("tags") or []
    s.num_tags = len(s.tag_list)
    # spec.md v1.1.1: "lexical order (i.e. case-insensitive alphanumeric order)"; a24ca81 sorts
    # a copy with a stable sort on strings.ToLower and compares.
    assert s.tag_list == sorted(s.tag_list, key=str.lower)


@case(DISCOVERY, LISTING_TAGS, "GET number of tags should be limitable by `n` query parameter")
def _discovery_tags_n(s: State) -> None:
    n = s.num_tags // 2
    response = s.client.do("GET", "/v2/<name>/tags/list", params={"n": str(n)})
    assert response.status_code == 200
    s.tag_list = response.json().get("tags") or []
    assert len(s.tag_list) == n


@case(DISCOVERY, LISTING_TAGS, "GET start of tag is set by `last` query parameter")
def _discovery_tags_last(s: State) -> None:
    n = s.num_tags // 2
    response = s.client.do("GET", "/v2/<name>/tags/list", params={"n": str(n)})
    assert response.status_code == 200
    s.tag_list = response.json().get("tags") or []
    last = s.tag_list[n - 1]
    response = s.client.do("GET", "/v2/<name>/tags/list", params={"n": str(n), "last": last})
    assert response.status_code == 200
    s.tag_list = response.json().get("tags") or []
    assert len(s.tag_list) <= n
    assert last not in s.tag_list  # 03b7b0b


LISTING_REFERRERS = "Test content discovery endpoints (listing references)"


def _referrers(s: State, digest: str, **params: str) -> tuple[httpx.Response, list[Any]]:
    response = s.client.do("GET", f"/v2/<name>/referrers/{digest}", params=params or None)
    assert response.status_code == 200
    assert response.headers.get("content-type") == OCI_INDEX
    manifests = response.json().get("manifests") or []
    assert isinstance(manifests, list)
    return response, manifests


@case(
    DISCOVERY,
    LISTING_REFERRERS,
    "GET request to nonexistent blob should result in empty 200 response",
)
def _discovery_referrers_missing(s: State) -> None:
    _, manifests = _referrers(s, s.data.dummy_digest)
    assert len(manifests) == 0


def _check_annotations(s: State, manifests: list[Any]) -> None:
    for entry in manifests:
        assert len(entry.get("annotations") or {}) == 1
        assert entry["annotations"][ANNOTATION_KEY] == s.data.annotations[entry["digest"]]


@case(DISCOVERY, LISTING_REFERRERS, "GET request to existing blob should yield 200")
def _discovery_referrers(s: State) -> None:
    _, manifests = _referrers(s, sha256(s.data.manifests[4]))
    assert len(manifests) == 5
    assert manifests[0]["digest"] != manifests[1]["digest"]
    _check_annotations(s, manifests)


@case(DISCOVERY, LISTING_REFERRERS, "GET request to existing blob with filter should yield 200")
def _discovery_referrers_filtered(s: State) -> None:
    response, manifests = _referrers(s, sha256(s.data.manifests[4]), artifactType=ARTIFACT_TYPE_A)
    # Upstream accepts an unfiltered answer (with a warning); the embedded registry filters.
    assert response.headers.get("oci-filters-applied") == "artifactType"
    assert len(manifests) == 2
    _check_annotations(s, manifests)


@case(DISCOVERY, LISTING_REFERRERS, "GET request to missing manifest should yield 200")
def _discovery_referrers_of_missing_subject(s: State) -> None:
    _, manifests = _referrers(s, sha256(s.data.manifests[3]))
    assert len(manifests) == 1
    assert manifests[0]["digest"] == sha256(s.data.refs["c_layer"])


@case(DISCOVERY, "Teardown", "Delete created manifest & associated tags")
def _discovery_teardown_manifests(s: State) -> None:
    data = s.data
    references = [
        sha256(data.refs["index"]),
        sha256(data.manifests[2]),
        sha256(data.manifests[4]),
        *(sha256(data.refs[k]) for k in ("a_config", "a_layer", "b_config", "b_layer", "c_layer")),
    ]
    for reference in references:
        response = s.client.do("DELETE", f"/v2/<name>/manifests/{reference}")
        assert deleted_or(response.status_code, 404, 405), reference


@case(DISCOVERY, "Teardown", "Delete config blob created in tests")
def _discovery_teardown_config(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(s.data.configs[2])}")
    assert deleted_or(response.status_code, 404, 405)


@case(DISCOVERY, "Teardown", "Delete layer blob created in setup")
def _discovery_teardown_layer(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(LAYER)}")
    assert deleted_or(response.status_code, 404, 405)


@case(DISCOVERY, "Teardown", "References teardown")
def _discovery_teardown_references(s: State) -> None:
    data = s.data
    paths = [
        *(f"/v2/<name>/manifests/{sha256(data.refs[k])}" for k in ("index", "a_config", "a_layer")),
        f"/v2/<name>/manifests/{sha256(data.manifests[4])}",
        *(f"/v2/<name>/manifests/{sha256(data.refs[k])}" for k in ("b_config", "b_layer")),
        f"/v2/<name>/blobs/{sha256(data.configs[4])}",
        f"/v2/<name>/blobs/{sha256(data.ref_blob_a)}",
        f"/v2/<name>/blobs/{sha256(data.ref_blob_b)}",
        f"/v2/<name>/blobs/{EMPTY_JSON_DIGEST}",
    ]
    for path in paths:
        response = s.client.do("DELETE", path)
        assert deleted_or(response.status_code, 404, 405), path


# ================================================================ 04_management_test.go

MANAGEMENT = "Content Management"


@case(MANAGEMENT, "Setup", "Populate registry with test config blob")
def _management_setup_config(s: State) -> None:
    assert success(s.client.push_blob(s.data.configs[3]).status_code)


@case(MANAGEMENT, "Setup", "Populate registry with test layer")
def _management_setup_layer(s: State) -> None:
    assert success(s.client.push_blob(LAYER).status_code)


@case(MANAGEMENT, "Setup", "Populate registry with test tag")
def _management_setup_tag(s: State) -> None:
    s.tag_to_delete = TEST_TAG
    response = s.client.put_manifest(s.tag_to_delete, s.data.manifests[3], OCI_MANIFEST)
    assert success(response.status_code)


@case(MANAGEMENT, "Setup", "Check how many tags there are before anything gets deleted")
def _management_count_tags(s: State) -> None:
    response = s.client.do("GET", "/v2/<name>/tags/list")
    assert response.status_code == 200
    s.management_tags = len(response.json().get("tags") or [])


@case(
    MANAGEMENT,
    "Manifest delete",
    "DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)",
)
def _management_delete_tag(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/manifests/{s.tag_to_delete}")
    assert response.status_code in (400, 202, 405)
    if response.status_code == 400:
        errors = s.client.errors(response)
        assert errors
        assert errors[0]["code"] == "UNSUPPORTED"


@case(
    MANAGEMENT,
    "Manifest delete",
    "DELETE request to manifest (digest) should yield 202 response unless already deleted",
)
def _management_delete_manifest(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/manifests/{sha256(s.data.manifests[3])}")
    assert response.status_code in (202, 404)


@case(
    MANAGEMENT,
    "Manifest delete",
    "GET request to deleted manifest URL should yield 404 response, unless delete is disallowed",
)
def _management_get_deleted(s: State) -> None:
    response = s.client.do("GET", f"/v2/<name>/manifests/{sha256(s.data.manifests[3])}")
    assert response.status_code in (404, 200)


@case(MANAGEMENT, "Manifest delete", "GET request to tags list should reflect manifest deletion")
def _management_tags_after_delete(s: State) -> None:
    response = s.client.do("GET", "/v2/<name>/tags/list")
    assert response.status_code in (404, 200)
    expected = s.management_tags - 1
    if response.status_code == 200:
        assert len(response.json().get("tags") or []) == expected
    else:
        assert expected == 0


@case(MANAGEMENT, "Blob delete", "DELETE request to blob URL should yield 202 response")
def _management_delete_blobs(s: State) -> None:
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(s.data.configs[3])}")
    assert response.status_code in (202, 404, 405)
    response = s.client.do("DELETE", f"/v2/<name>/blobs/{sha256(LAYER)}")
    assert response.status_code in (202, 404, 405)
    s.blob_delete_allowed = response.status_code != 405


@case(MANAGEMENT, "Blob delete", "GET request to deleted blob URL should yield 404 response")
def _management_get_deleted_blob(s: State) -> None:
    assert s.blob_delete_allowed  # both targets delete blobs
    response = s.client.do("GET", f"/v2/<name>/blobs/{sha256(s.data.configs[3])}")
    assert response.status_code == 404


# ================================================================ targets

EMBEDDED, REFEREE = "embedded", "docker-registry"

# Cases docker-registry 2.8.2 is no referee for, with the reason (each fails there).
NOT_REFEREE = {
    "Error codes": "docker-registry 2.8.2 answers GET /manifests/sha256:totallywrong with 500",
    "References setup": "docker-registry 2.8.2 predates OCI 1.1: no OCI-Subject header",
    LISTING_REFERRERS: "docker-registry 2.8.2 predates OCI 1.1: no referrers API",
    "Out-of-order blob upload should return 416": (
        "docker-registry 2.8.2 accepts a chunk that does not start where the upload ends (202)"
    ),
    "Retry previous blob chunk should return 416": (
        "docker-registry 2.8.2 refuses a session URL whose _state is stale (404)"
    ),
    "Get on stale blob upload should return 204 with a range and location": (
        "docker-registry 2.8.2 refuses a session URL whose _state is stale (404)"
    ),
    "DELETE request to manifest tag should return 202, unless tag deletion is disallowed "
    "(400/405)": (
        "docker-registry 2.8.2 refuses a tag delete as 400 DIGEST_INVALID, not UNSUPPORTED"
    ),
    "GET request to list tags should yield 200 response and be sorted": (
        "docker-registry 2.8.2 lists tags in directory order"
    ),
    "GET number of tags should be limitable by `n` query parameter": (
        "docker-registry 2.8.2 ignores n on tags/list"
    ),
    "GET start of tag is set by `last` query parameter": (
        "docker-registry 2.8.2 ignores n and last on tags/list"
    ),
}


def _on_referee(item: Case) -> bool:
    return item.name not in NOT_REFEREE and item.context not in NOT_REFEREE


class Suite:
    """One target's run: cases in upstream order, each once, outcomes remembered."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.outcomes: dict[str, BaseException | None] = {}

    def run(self, wanted: Case) -> None:
        for item in CASES:
            if item.id not in self.outcomes:
                try:
                    item.run(self.state)
                except Exception as exc:  # a failed case does not stop the next ones
                    self.outcomes[item.id] = exc
                else:
                    self.outcomes[item.id] = None
            if item is wanted:
                break
        failure = self.outcomes[wanted.id]
        if failure is not None:
            raise failure


@pytest.fixture(scope="module")
def suite(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registries: Callable[..., Registry],
) -> Iterator[Suite]:
    if request.param == EMBEDDED:
        server = start_embedded(
            tmp_path_factory.mktemp("conformance") / "root", request.addfinalizer
        )
        host = server.host
    else:
        host = registries().host
    client = Client(host, f"conformance/{uuid.uuid4().hex[:8]}")
    state = State(client, SuiteData.make(), f"conformance-{uuid.uuid4()}")
    yield Suite(state)
    client.http.close()
    if request.param == EMBEDDED:
        assert "Traceback" not in server.output()


PARAMS = [
    pytest.param(target, item, id=f"{target}: {item.id}")
    for target in (EMBEDDED, REFEREE)
    for item in CASES
    if target == EMBEDDED or _on_referee(item)
]


@pytest.mark.parametrize(("suite", "item"), PARAMS, indirect=["suite"])
def test_conformance(suite: Suite, item: Case) -> None:
    """One upstream case against one target (the earlier cases of that target run first)."""
    suite.run(item)


def test_every_upstream_case_is_transcribed() -> None:
    """The count of g.Specify blocks of v1.1.1 that run with the configuration above."""
    by_workflow: dict[str, int] = {}
    for item in CASES:
        by_workflow[item.workflow] = by_workflow.get(item.workflow, 0) + 1
    # Pull 23: 5 setup + 4 blobs + 8 manifests + 1 error + 5 teardown (manifests before blobs).
    # Push 28: 2 streamed + 8 monolithic + 6 chunked + 5 cross-mount (the "automatic
    # discovery enabled" case needs OCI_AUTOMATIC_CROSSMOUNT=true) + 4 manifest + 3 teardown.
    # Discovery 15: 4 setup ("no push" variant needs OCI_TAG_LIST) + 3 tags + 4 referrers
    # + 4 teardown. Management 10: 4 setup + 4 manifest delete + 2 blob delete.
    assert by_workflow == {PULL: 23, PUSH: 28, DISCOVERY: 15, MANAGEMENT: 10}
