"""``imgctl sign`` and ``imgctl verify``: cosign-compatible signatures (imgctl.trust).

An image given by tag is resolved to its digest first; what is signed and verified is always
the digest. Failures exit by class (``imgctl.cli._exit``): a bad key reference 2, a registry's
refusal 3/4/5/6, no signature that verifies (or an unreadable signature manifest) 7.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    from imgctl.trust import Signer, SignOutcome, VerificationReport

__all__ = ["app"]

app = typer.Typer()


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            fail(f"-a {value!r}: expected key=value", 2)
        out[key] = text
    return out


@app.command()
@registry_command
def sign(
    connection: Connection,
    image: Annotated[str, typer.Argument(help="Image to sign: REGISTRY/REPO:TAG or @DIGEST.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Signing key: cosign.key (password from $COSIGN_PASSWORD), a PEM private key, "
            "or a KMS URI (awskms://...).",
        ),
    ] = None,
    keyless: Annotated[
        bool,
        typer.Option(
            "--keyless",
            help="Sign with a Fulcio certificate for the OIDC token in $SIGSTORE_ID_TOKEN and "
            "log it in Rekor (needs both services; see docs/signing.md).",
        ),
    ] = False,
    trust_config: Annotated[
        Path | None,
        typer.Option(
            "--trust-config",
            envvar="SIGSTORE_TRUST_CONFIG",
            help="With --keyless: the sigstore ClientTrustConfig JSON naming Fulcio, Rekor and "
            "their keys (default: the public-good instance, fetched with TUF).",
            dir_okay=False,
        ),
    ] = None,
    annotation: Annotated[
        list[str] | None,
        typer.Option(
            "--annotation",
            "-a",
            help="key=value written into the payload's optional section (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Sign an image's digest, cosign-compatibly: a layer appended to its sha256-HEX.sig tag."""
    ref = parse_ref(image)
    if (key is None) == (not keyless):
        fail("give --key REF or --keyless (one of them)", 2)
    extra = _annotations(annotation or [])
    signer: Signer
    try:
        if keyless:
            from imgctl.trust._keyless_sign import keyless_signer

            signer = keyless_signer(os.environ, trust_config)
        else:
            from imgctl.trust import load_signer

            assert key is not None
            signer = load_signer(key, environ=os.environ)
    except ImgctlError as exc:
        stop(exc)

    async def work(client: RegistryClient) -> SignOutcome:
        from imgctl.trust import sign_image

        pinned = await pin_digest(client, ref)
        return await sign_image(client, pinned, signer, annotations=extra or None)

    result = connection.run(work, exit_codes=True)
    if output is not Output.text:
        print_document(result.as_dict(), output)
        return
    if result.status == "signed":
        print(f"signed {result.image} with {signer.ref}: {result.signature}")
    else:
        print(f"already signed {result.image} with {signer.ref}: {result.signature}")


@app.command()
@registry_command
def verify(
    connection: Connection,
    image: Annotated[str, typer.Argument(help="Image to verify: REGISTRY/REPO:TAG or @DIGEST.")],
    key: PublicKeyOpt = None,
    certificate_identity: CertificateIdentityOpt = None,
    certificate_oidc_issuer: CertificateIssuerOpt = None,
    certificate_chain: CertificateChainOpt = None,
    trusted_root: TrustedRootOpt = None,
    rekor_public_key: RekorPublicKeyOpt = None,
    signed_identity: Annotated[
        list[str] | None,
        typer.Option(
            "--signed-identity",
            help="Repository a payload may name (repeatable; tags ignored). Default: the "
            "image's own repository.",
            show_default=False,
        ),
    ] = None,
    any_identity: Annotated[
        bool,
        typer.Option(
            "--any-identity",
            help="Accept a payload naming any repository (cosign's default; not imgctl's).",
        ),
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Check every signature of an image's digest; say which verified and why others did not."""
    from imgctl.errors import SignatureError

    ref = parse_ref(image)
    identities = [parse_ref(value).name for value in signed_identity or []]
    if identities and any_identity:
        fail("give --signed-identity or --any-identity, not both", 2)
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
    if not keys and wanted is None:
        fail(
            "give --key REF, or --certificate-identity and --certificate-oidc-issuer with the "
            "Fulcio and Rekor trust material",
            2,
        )
    policy = TrustPolicy(
        keys=keys,
        keyless=(wanted,) if wanted is not None else (),
        identities=tuple(identities),
        any_identity=any_identity,
    )

    async def work(client: RegistryClient) -> VerificationReport:
        from imgctl.trust import verify_image

        pinned = await pin_digest(client, ref)
        return await verify_image(client, pinned, policy)

    report = connection.run(work, exit_codes=True)
    if output is not Output.text:
        print_document(report.as_dict(), output)
    else:
        _print_report(report)
    if not report.verified:
        found = len(report.checks)
        error = SignatureError(
            f"no signature of {report.image} verified"
            + (f" ({found} found)" if found else ": it has no signatures")
        )
        if output is not Output.text:
            raise SystemExit(exit_code(error))
        stop(error)


def _print_report(report: VerificationReport) -> None:
    for check in report.checks:
        verdict = "verified" if check.ok else "refused "
        print(f"{verdict}  {check.layer}  {check.reason}")
    if report.verified:
        good = sum(c.ok for c in report.checks)
        print(
            f"{report.image}: {good} of {len(report.checks)} signatures verified", file=sys.stderr
        )
