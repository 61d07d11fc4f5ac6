"""skopeo as an independent client: push test layouts, read raw manifests back."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from .registry import require_binary


def _tls_args(prefix: str, cert_dir: Path | None, creds: str | None) -> list[str]:
    args = [f"--{prefix}tls-verify={'true' if cert_dir else 'false'}"]
    if cert_dir:
        args.append(f"--{prefix}cert-dir={cert_dir}")
    if creds:
        args.append(f"--{prefix}creds={creds}")
    return args


def skopeo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    require_binary("skopeo")
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {result.stderr.decode().strip()}")
    return result


def push_layout(
    layout: str, dest: str, *, cert_dir: Path | None = None, creds: str | None = None
) -> None:
    """``skopeo copy --all --preserve-digests oci:... docker://dest``."""
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--quiet",
        *_tls_args("dest-", cert_dir, creds),
        layout,
        f"docker://{dest}",
    )


def inspect_raw(ref: str, *, cert_dir: Path | None = None, creds: str | None = None) -> bytes:
    """The manifest bytes as skopeo sees them."""
    return skopeo("inspect", "--raw", *_tls_args("", cert_dir, creds), f"docker://{ref}").stdout


def digest_of(ref: str, *, cert_dir: Path | None = None, creds: str | None = None) -> str:
    """sha256 of the raw manifest skopeo reads: the digest an independent client sees."""
    return "sha256:" + hashlib.sha256(inspect_raw(ref, cert_dir=cert_dir, creds=creds)).hexdigest()
