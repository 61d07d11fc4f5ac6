"""Loopback hosts, decided one way for every part of imgctl (imgctl._internal.hosts).

The registry client talks plain HTTP to loopback registries first and sends a password over
plain HTTP only to them; the Slack notifier accepts an http:// webhook only on loopback;
``imgctl registry serve`` warns when it listens beyond loopback. Three copies of the test once
disagreed: only the notifier's knew that ``LOCALHOST`` is localhost.
"""

from __future__ import annotations

import pytest

from imgctl._internal.hosts import is_loopback
from imgctl.oci import Reference
from imgctl.remote import ClientOptions, RegistryClient

from ..support.registry import Registry


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost:5000", True),
        ("LocalHost:5000", True),
        ("127.0.0.1", True),
        ("127.8.9.10:443", True),
        ("::1", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("0:0:0:0:0:0:0:1", True),
        ("0.0.0.0:5000", False),
        ("[::]:5000", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("my-localhost:5000", False),
        ("registry.example.com:5000", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


async def test_registry_named_in_upper_case_is_reached_over_plain_http(
    registry: Registry,
) -> None:
    # The client tries plain HTTP first only on loopback; over https alone this fails.
    host = registry.host.replace("127.0.0.1", "LOCALHOST")
    async with RegistryClient(options=ClientOptions(retries=0)) as client:
        assert await client.ping(host) == f"http://{host}"
        assert await client.head_manifest(Reference.parse(f"{host}/absent/app:v1")) is None
