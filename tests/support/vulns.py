"""The real vulnerability reports the gate's tests read (tests/data/vulns/README.md).

They are other projects' test data (Trivy's and Grype's golden outputs, cosign's envelopes):
looked for in ``$IMGCTL_VULN_FIXTURES``, ``tests/data/vulns/`` and ``shared/data/vulns/`` beside
the repository, in that order. Where none holds them the tests fail saying how to get them; they
never skip.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# file -> sha256 of the bytes as the upstream commit has them (README.md says where).
FILES = {
    "trivy-alpine-310.json": "3320485c817ca9a88e424a18a4490643ace8ba8d042284997f6d36cceca4ddaa",
    "trivy-alpine-310.sarif": "030e1258377520d96e99786127290a386f2688e45533f7ae861e9b187b38c9eb",
    "trivy-alpine-39-high-critical.json": (
        "36f1abc789afe452464a9bb14a20afc292d570f7c3ef0107f4ac226f5f3052b0"
    ),
    "trivy-alpine-39-skip.json": "f801f381fb4a2e1efa2ffbb7188e6005a4c0711a4453189fc036011788b64ace",
    "trivy-cosign-vuln-alpine-310.json": (
        "f7249f4bde155d4a6fd07810e17ee84439b06bea065b2b9c35da52d6df95be73"
    ),
    "trivy-gomod-vex.json": "df6055c1b1cd54229a3095ead3a41455f0c48c7538f8fa8d6413abb2adaf7d06",
    "trivy-mariner-1.0.json": "326d9266d5eb549573d8993bea7b9d9ec60fa198dcff905a2706956314317a75",
    "trivy-secrets.json": "cc6c0caeaecf0b7f91b1aae3980f663239c652c3a001ad7e47004963222f8655",
    "grype-image.json": "e4d1464de2711dde20a1975595949f361ae253fc44f814f2d2e8cb52d27e4077",
    "grype-empty.json": "cec1e5465bdb168b82401d9238ae43aa2fa32655c70ac5760b69281f764d97c5",
    "grype-image.sarif": "9674b4b769c8b5dfb2194cf3cde524c11088fda61f95b297b88a20a0484f3d55",
    "cosign-vuln-envelope.json": (
        "2e109badbc9176c6824ff00f2dadc512113781d6cca579b3b3e72550b8ab50d8"
    ),
    "cosign-vuln-envelope-wrong-type.json": (
        "10235174ab94f9fde828d4ad7b241b4b556ab7b925ef8ded727e8b7ad9a2a95b"
    ),
}


def fixture_dir() -> Path:
    """The directory holding every file of FILES; a test failure saying how to get them if none."""
    candidates = [
        os.environ.get("IMGCTL_VULN_FIXTURES"),
        REPO / "tests" / "data" / "vulns",
        REPO.parent / "shared" / "data" / "vulns",
    ]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in FILES):
            return Path(candidate)
    pytest.fail(
        "the real vulnerability reports are not at hand: see tests/data/vulns/README.md for "
        "where each comes from (Trivy, Grype and cosign test data at pinned commits) and put "
        "them in tests/data/vulns/, ../shared/data/vulns/ or $IMGCTL_VULN_FIXTURES"
    )


def fixture(name: str) -> bytes:
    """One report's bytes, checked against the upstream file's sha256."""
    data = (fixture_dir() / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == FILES[name], f"{name} is not the upstream file"
    return data
