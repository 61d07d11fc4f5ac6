"""``imgctl generate-key-pair``: a cosign-format key pair, or a new key in a KMS (imgctl.trust).

The password comes from COSIGN_PASSWORD as cosign takes it; without it, a terminal is asked
twice, and anything else is an error (a script must never hang on a prompt). Files are never
overwritten. docs/signing.md, "Keys".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from imgctl.cli._exit import EXIT_INVALID, exit_code, fail, interrupted
from imgctl.cli._output import Output, print_document
from imgctl.errors import ImgctlError

__all__ = ["app"]

app = typer.Typer()

PASSWORD_VARIABLE = "COSIGN_PASSWORD"  # noqa: S105 (the variable's name)


def _stop(error: ImgctlError) -> NoReturn:
    fail(str(error), exit_code(error))


def _password() -> bytes:
    """COSIGN_PASSWORD, else asked twice on a terminal; an error when neither can be had."""
    value = os.environ.get(PASSWORD_VARIABLE)
    if value is not None:
        return value.encode("utf-8")
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        fail(
            f"no password for the private key: set {PASSWORD_VARIABLE} "
            "(an empty value makes a key without a password)",
            EXIT_INVALID,
        )
    import getpass

    first = getpass.getpass("Enter password for private key: ")
    second = getpass.getpass("Enter password for private key again: ")
    if first != second:
        fail("passwords do not match", EXIT_INVALID)
    return first.encode("utf-8")


@app.command("generate-key-pair")
def generate_key_pair(
    output_key_prefix: Annotated[
        str,
        typer.Option(
            "--output-key-prefix",
            help="Write PREFIX.key and PREFIX.pub (never overwritten).",
            metavar="PREFIX",
        ),
    ] = "cosign",
    kms: Annotated[
        str | None,
        typer.Option(
            "--kms",
            help="Create the key in a KMS instead (awskms://ENDPOINT/alias/NAME, the endpoint "
            "may be empty; an existing key under the alias is used) and write only PREFIX.pub.",
            metavar="URI",
        ),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
    ] = Output.text,
) -> None:
    """Generate a cosign key pair: an encrypted ECDSA P-256 private key and its public key.

    The private key file is cosign's own format (ENCRYPTED SIGSTORE PRIVATE KEY), written
    with mode 0600; its password is COSIGN_PASSWORD, or asked twice on a terminal. cosign
    signs and verifies with these files, and imgctl sign/verify take them as --key.
    """
    from imgctl.trust._keys import generate_key_pair as generate
    from imgctl.trust._keys import write_public_key

    prefix = Path(output_key_prefix)
    try:
        if kms is not None:
            from imgctl.trust._kms import create_kms_key

            public = create_kms_key(kms, os.environ).public_key()
            pub_path = write_public_key(prefix.with_name(prefix.name + ".pub"), public)
            key_path: Path | None = None
            key_id = public.key_id
        else:
            key_path, pub_path = generate(prefix, _password())
            from imgctl.trust import load_public_key

            key_id = load_public_key(str(pub_path)).key_id
    except ImgctlError as exc:
        _stop(exc)
    except KeyboardInterrupt:
        interrupted()
    if output is not Output.text:
        print_document(
            {
                "privateKey": str(key_path) if key_path is not None else None,
                "kms": kms,
                "publicKey": str(pub_path),
                "keyId": key_id,
            },
            output,
        )
        return
    if key_path is not None:
        print(f"Private key written to {key_path}")
    else:
        print(f"Key in KMS: {kms}")
    print(f"Public key written to {pub_path}")
