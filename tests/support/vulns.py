"""The real vulnerability reports the gate's tests read (tests/data/vulns/README.md).

They are other projects' test data (Trivy's and Grype's golden outputs, cosign's envelopes):
looked for in ``$IMGCTL_VULN_FIXTURES``, ``tests/data/vulns/`` and ``shared/data/vulns/`` beside
the repository, in that order, and else taken from the workplace's fetched git copies of
Trivy, Grype and cosign (``/work/.mirror``) into a temporary folder. Where none holds them the
tests fail saying how to get them; they never skip.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
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


# file -> (mirror folder, commit, path): where README.md says each file comes from, so the files
# can be taken from the workplace's fetched git copies (/work/.mirror/OWNER+NAME/repo) when no
# folder holds them. The Trivy cosign-vuln record is the first ```json block of that page.
_TRIVY = ("aquasecurity+trivy", "dc3c56eed58ab21c7e08d26757c517bc946a86c5")
_GRYPE = ("anchore+grype", "4562c55cebba5fe50a0c5afc7cec50a3b2392a87")
_COSIGN = ("sigstore+cosign", "d6d86c224e5899b54f56cbb063b79dc43abc11c2")
SOURCES = {
    "trivy-alpine-310.json": (*_TRIVY, "integration/testdata/alpine-310.json.golden"),
    "trivy-alpine-310.sarif": (*_TRIVY, "integration/testdata/alpine-310.sarif.golden"),
    "trivy-alpine-39-high-critical.json": (
        *_TRIVY,
        "integration/testdata/alpine-39-high-critical.json.golden",
    ),
    "trivy-alpine-39-skip.json": (*_TRIVY, "integration/testdata/alpine-39-skip.json.golden"),
    "trivy-cosign-vuln-alpine-310.json": (*_TRIVY, "docs/guide/supply-chain/attestation/vuln.md"),
    "trivy-gomod-vex.json": (*_TRIVY, "integration/testdata/gomod-vex.json.golden"),
    "trivy-mariner-1.0.json": (*_TRIVY, "integration/testdata/mariner-1.0.json.golden"),
    "trivy-secrets.json": (*_TRIVY, "integration/testdata/secrets.json.golden"),
    "grype-image.json": (
        *_GRYPE,
        "grype/presenter/json/testdata/snapshot/TestJsonImgsPresenter.golden",
    ),
    "grype-empty.json": (
        *_GRYPE,
        "grype/presenter/json/testdata/snapshot/TestEmptyJsonPresenter.golden",
    ),
    "grype-image.sarif": (
        *_GRYPE,
        "grype/presenter/sarif/testdata/snapshot/TestSarifPresenter_image.golden",
    ),
    "cosign-vuln-envelope.json": (*_COSIGN, "pkg/policy/testdata/valid/vuln"),
    "cosign-vuln-envelope-wrong-type.json": (*_COSIGN, "pkg/policy/testdata/malformed/vuln"),
}


def _from_mirrors() -> Path | None:
    """Write every file from the fetched git copies into a temporary folder, if they are here."""
    mirrors = [m for m in {REPO.parent / ".mirror", Path("/work/.mirror")} if m.is_dir()]
    out = Path(tempfile.mkdtemp(prefix="imgctl-vulns-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    for name, (folder, commit, path) in SOURCES.items():
        for mirror in mirrors:
            shown = subprocess.run(
                ["git", "--git-dir", str(mirror / folder / "repo"), "show", f"{commit}:{path}"],
                capture_output=True,
                check=False,
            )
            if shown.returncode == 0:
                break
        else:
            return None
        data = shown.stdout
        if path.endswith(".md"):
            block = re.search(rb"```json\n(.*?)```", data, re.DOTALL)
            if block is None:
                return None
            data = block.group(1)
        (out / name).write_bytes(data)
    return out


@functools.cache
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
    extracted = _from_mirrors()
    if extracted is not None:
        return extracted
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
