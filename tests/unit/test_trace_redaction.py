"""What ``imgctl -v``'s HTTP trace shows of headers and URLs: never a credential or a token."""

from __future__ import annotations

import pytest

from imgctl.remote._trace import redact_header, redact_url


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer eyJhbGciOi.payload.sig", "Bearer <redacted>"),
        ("authorization", "Basic YWxpY2U6c2VjcmV0", "Basic <redacted>"),
        ("Proxy-Authorization", "secret", "<redacted>"),
        ("Cookie", "session=abc", "<redacted>"),
        ("Set-Cookie", "session=abc; HttpOnly", "<redacted>"),
        ("X-Registry-Token", "abc", "<redacted>"),
        ("X-Amz-Security-Token", "abc", "<redacted>"),
        # What a bug report needs stays.
        ("WWW-Authenticate", 'Bearer realm="https://auth/token",service="r"', None),
        ("Docker-Content-Digest", "sha256:" + "0" * 64, None),
        ("Location", "/v2/app/blobs/uploads/1?_state=abc", None),
    ],
)
def test_headers(name: str, value: str, shown: str | None) -> None:
    assert redact_header(name, value) == (value if shown is None else shown)


def test_urls_lose_userinfo_and_secret_query_values() -> None:
    presigned = (
        "https://alice:hunter2@bucket.s3.example.com/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature=deadbeef&X-Amz-Expires=1200"
        "&access_token=t0k3n&sig=s1g&n=100"
    )
    assert redact_url(presigned) == (
        "https://bucket.s3.example.com/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&X-Amz-Expires=1200"
        "&access_token=<redacted>&sig=<redacted>&n=100"
    )
    token_request = "https://auth.example.com/token?scope=repository:app:pull&service=reg"
    assert redact_url(token_request) == token_request
    assert redact_url("http://127.0.0.1:5000/v2/") == "http://127.0.0.1:5000/v2/"
