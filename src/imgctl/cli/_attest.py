"""``imgctl attestations`` and ``imgctl attest``: in-toto attestations in DSSE envelopes.

``attestations`` lists what is stored for an image's digest (the ``sha256-<hex>.att`` tag and
DSSE referrers), grouped by predicate type, each verified against the keys or keyless identity
given, or reported unverified without them. ``attest`` is cosign attest's shape: a predicate
file wrapped in an in-toto Statement v1 about the digest, signed and appended to ``.att``.
Exit codes as ``imgctl verify``: 7 when keys were given and no listed attestation verified.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgctl.cli._exit import exit_code, fail, stop
from imgctl.cli._flags import (
    CertificateChainOpt,
    CertificateIdentityOpt,
    CertificateIssuerOpt,
    Connection,
    OutputOpt,
    PublicKeyOpt,
    RekorPublicKeyOpt,
    TrustedRootOpt,
    parse_ref,
    pin_digest,
    registry_command,
)
from imgctl.cli._output import Output, print_document
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.remote import RegistryClient
    from imgctl.trust import AttestationCheck, AttestOutcome

__all__ = ["app"]

app = typer.Typer()

# cosign attest --type's short names (cmd/cosign/cli/options/predicate.go).
PREDICATE_TYPES = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}
# A predicate file is a JSON document of at most a few MiB (an SBOM is the large case).
MAX_PREDICATE_BYTES = 8 * 1024 * 1024


def _predicate_type(value: str) -> str:
    """A cosign short name or a URI, as the predicate type URI."""
    if value in PREDICATE_TYPES:
        return PREDICATE_TYPES[value]
    scheme, sep, rest = value.partition(":")
    if not sep or not rest or not scheme.isascii() or not scheme[:1].isalpha():
        fail(
            f"--type {value!r}: give a predicate type URI or one of {', '.join(PREDICATE_TYPES)}",
            2,
        )
    return value


@app.command()
@registry_command
def attestations(
    connection: Connection,
    image: Annotated[str, typer.Argument(help="Image: REGISTRY/REPO:TAG or @DIGEST.")],
    key: PublicKeyOpt = None,
    certificate_identity: CertificateIdentityOpt = None,
    certificate_oidc_issuer: CertificateIssuerOpt = None,
    certificate_chain: CertificateChainOpt = None,
    trusted_root: TrustedRootOpt = None,
    rekor_public_key: RekorPublicKeyOpt = None,
    predicate_type: Annotated[
        list[str] | None,
        typer.Option(
            "--predicate-type",
            help="Only attestations of this predicate type: a URI or one of cosign's short "
            "names, e.g. slsaprovenance1 (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """List an image's attestations by predicate type: verified or not, and why."""
    from imgctl.errors import SignatureError

    ref = parse_ref(image)
    wanted_types = {_predicate_type(value) for value in predicate_type or []}
    try:
        from imgctl.trust import TrustPolicy, keyless_identity, load_public_key

        keys = tuple(load_public_key(k, environ=os.environ) for k in key or [])
        wanted = keyless_identity(
            certificate_identity,
            certificate_oidc_issuer,
            certificate_chain=certificate_chain,
            trusted_root=trusted_root,
            rekor_public_keys=rekor_public_key or [],
        )
    except ImgctlError as exc:
        stop(exc)
    judging = bool(keys) or wanted is not None
    policy = (
        TrustPolicy(keys=keys, keyless=(wanted,) if wanted is not None else ()) if judging else None
    )

    async def work(client: RegistryClient) -> tuple[str, list[AttestationCheck]]:
        from imgctl.trust import list_attestations

        pinned = await pin_digest(client, ref)
        return str(pinned), await list_attestations(client, pinned, policy)

    pinned, checks = connection.run(work, exit_codes=True)
    if wanted_types:
        checks = [c for c in checks if _types_of(c) & wanted_types]
    groups = _grouped(checks)
    if output is not Output.text:
        print_document(
            {
                "image": pinned,
                "digest": pinned.rpartition("@")[2],
                "verified": any(c.ok for c in checks),
                "predicateTypes": [
                    {
                        "predicateType": kind,
                        "count": len(group),
                        "verified": sum(c.ok for c in group),
                    }
                    for kind, group in groups
                ],
                "attestations": [c.as_dict() for _, group in groups for c in group],
            },
            output,
        )
    else:
        _print_groups(pinned, groups, judging)
    if judging and not any(c.ok for c in checks):
        error = SignatureError(
            f"no attestation of {pinned} verified"
            + (f" ({len(checks)} found)" if checks else ": it has none")
        )
        if output is not Output.text:
            raise SystemExit(exit_code(error))
        stop(error)


def _types_of(check: AttestationCheck) -> set[str]:
    """The layer's predicate type annotation and the statement's own."""
    found = {check.predicate_type} if check.predicate_type else set()
    stated = (check.statement or {}).get("predicateType")
    if isinstance(stated, str):
        found.add(stated)
    return found


def _grouped(checks: list[AttestationCheck]) -> list[tuple[str | None, list[AttestationCheck]]]:
    groups: dict[str | None, list[AttestationCheck]] = {}
    for check in checks:
        groups.setdefault(check.predicate_type, []).append(check)
    return list(groups.items())


def _print_groups(
    image: str, groups: list[tuple[str | None, list[AttestationCheck]]], judging: bool
) -> None:
    if not groups:
        print(f"{image}: no attestations", file=sys.stderr)
        return
    for kind, group in groups:
        good = sum(c.ok for c in group)
        tally = f"{good} of {len(group)} verified" if judging else f"{len(group)}"
        print(f"{kind or '(no predicate type)'}  ({tally})")
        for check in group:
            verdict = "verified" if check.ok else "refused " if judging else "unchecked"
            print(f"  {verdict}  {check.layer}  {check.reason}")


def _read_predicate(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PREDICATE_BYTES + 1)
    except OSError as exc:
        fail(f"--predicate {path}: {exc.strerror or exc}", 2)
    if len(data) > MAX_PREDICATE_BYTES:
        fail(f"--predicate {path}: larger than {MAX_PREDICATE_BYTES // (1024 * 1024)} MiB", 2)
    from imgctl.trust._json import Malformed, strict_json

    try:
        predicate = strict_json(data, str(path))
    except Malformed as exc:
        fail(f"--predicate {exc}", 2)
    if not isinstance(predicate, dict):
        fail(f"--predicate {path}: not a JSON object", 2)
    return predicate


@app.command()
@registry_command
def attest(
    connection: Connection,
    image: Annotated[str, typer.Argument(help="Image to attest: REGISTRY/REPO:TAG or @DIGEST.")],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            help="Signing key: cosign.key (password from $COSIGN_PASSWORD), a PEM private key, "
            "or a KMS URI (awskms://...).",
        ),
    ],
    predicate: Annotated[
        Path,
        typer.Option("--predicate", help="JSON file holding the predicate.", dir_okay=False),
    ],
    type_: Annotated[
        str,
        typer.Option(
            "--type",
            help="Predicate type: a URI, or one of cosign's short names (custom, "
            "slsaprovenance1, spdxjson, cyclonedx, vuln, openvex...).",
        ),
    ],
    output: OutputOpt = Output.text,
) -> None:
    """Attest an image's digest: an in-toto statement in a DSSE envelope, appended to .att."""
    ref = parse_ref(image)
    uri = _predicate_type(type_)
    body = _read_predicate(predicate)
    try:
        from imgctl.trust import load_signer

        signer = load_signer(key, environ=os.environ)
    except ImgctlError as exc:
        stop(exc)

    async def work(client: RegistryClient) -> AttestOutcome:
        from imgctl.trust import attest_image
        from imgctl.trust._attest import STATEMENT_V1
        from imgctl.trust._cosign import cosign_repository_name

        pinned = await pin_digest(client, ref)
        assert pinned.digest is not None
        statement = {
            "_type": STATEMENT_V1,
            "subject": [
                {
                    "name": cosign_repository_name(pinned),
                    "digest": {pinned.digest.algorithm: pinned.digest.hex},
                }
            ],
            "predicateType": uri,
            "predicate": body,
        }
        return await attest_image(client, pinned, signer, statement, predicate_type=uri)

    result = connection.run(work, exit_codes=True)
    if output is not Output.text:
        print_document(result.as_dict(), output)
        return
    verb = "attested" if result.status == "attested" else "already attested"
    print(f"{verb} {result.image} ({uri}) with {signer.ref}: {result.attestation}")
