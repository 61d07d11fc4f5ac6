"""Trust material read from files: Fulcio roots, Rekor keys, sigstore's trusted_root.json.

One reader for every caller (``imgctl verify``, ``imgctl cip``'s validation, the policy file's
keyless rules), so the same file is accepted or refused the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imgctl.errors import KeyRefError, UsageError
from imgctl.trust._cosign import KeylessIdentity
from imgctl.trust._keyless import load_fulcio_roots, load_rekor_keys, trusted_root_material

__all__ = ["MAX_TRUST_FILE_BYTES", "keyless_identity", "read_trusted_root"]

# A trusted_root.json is a few KiB, a PEM chain less: 1 MiB is far beyond either.
MAX_TRUST_FILE_BYTES = 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUST_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyRefError(f"{what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise KeyRefError(f"{what} {path}: larger than 1 MiB, not a {what}")
    return data


def read_trusted_root(path: Path) -> tuple[bytes, tuple[bytes, ...]]:
    """The Fulcio roots (one PEM bundle) and Rekor keys of a trusted_root.json, read bounded."""
    roots, rekor = trusted_root_material(_read(path, "trusted root"), str(path))
    # Checked now: a root that vouches for nothing would refuse every keyless signature.
    if not roots.strip() or not load_fulcio_roots(roots):
        raise KeyRefError(f"trusted root {path} holds no Fulcio certificate authority")
    if not rekor:
        raise KeyRefError(f"trusted root {path} holds no Rekor transparency log key")
    load_rekor_keys(rekor)
    return roots, rekor


def keyless_identity(
    identity: str | None,
    issuer: str | None,
    *,
    certificate_chain: Path | None = None,
    trusted_root: Path | None = None,
    rekor_public_keys: Sequence[Path] = (),
) -> KeylessIdentity | None:
    """The keyless identity cosign's verify flags describe, or None when none of them is given.

    Needs the identity and issuer, and Fulcio roots (``certificate_chain`` or ``trusted_root``)
    and Rekor keys (``rekor_public_keys`` or ``trusted_root``); every file is parsed now, so a
    bad one is one error before any request, not one per signature.
    """
    given = [identity, issuer, certificate_chain, trusted_root, *rekor_public_keys]
    if not any(g is not None for g in given):
        return None
    if not identity or not issuer:
        raise UsageError(
            "keyless verification needs --certificate-identity and --certificate-oidc-issuer"
        )
    roots = b""
    rekor: tuple[bytes, ...] = ()
    if trusted_root is not None:
        roots, rekor = read_trusted_root(trusted_root)
    if certificate_chain is not None:
        roots += b"\n" + _read(certificate_chain, "certificate chain")
    rekor += tuple(_read(p, "Rekor public key") for p in rekor_public_keys)
    if not roots.strip():
        raise UsageError(
            "keyless verification needs the Fulcio roots: --certificate-chain FILE (PEM) or "
            "--trusted-root FILE (trusted_root.json)"
        )
    if not rekor:
        raise UsageError(
            "keyless verification needs the Rekor key: --rekor-public-key FILE or "
            "--trusted-root FILE"
        )
    if not load_fulcio_roots(roots):
        raise KeyRefError("the certificate chain holds no certificate")
    load_rekor_keys(rekor)
    return KeylessIdentity(identity, issuer, roots, rekor)
