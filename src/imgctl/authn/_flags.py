"""Credentials from the command line: username and password, or a registry token.

``--registry-username``/``--registry-password`` or ``--registry-token``, and their variables
``IMGCTL_USERNAME``/``IMGCTL_PASSWORD``/``IMGCTL_TOKEN``.
"""

from __future__ import annotations

from imgctl.authn._keychain import Credential, StaticKeychain
from imgctl.errors import UsageError

__all__ = ["FLAG_SOURCE", "flag_credential", "flags_keychain"]

FLAG_SOURCE = "flags"


def flag_credential(
    username: str | None = None, password: str | None = None, token: str | None = None
) -> Credential | None:
    """The credential that --registry-username/--registry-password or --registry-token give."""
    if (username is None) != (password is None):
        raise UsageError(
            "--registry-username and --registry-password must be given together "
            "(or IMGCTL_USERNAME and IMGCTL_PASSWORD)"
        )
    if token is not None and username is not None:
        raise UsageError(
            "give --registry-token or --registry-username/--registry-password, not both"
        )
    if token is not None:
        return Credential(registry_token=token)
    if username is not None:
        return Credential(username, password)
    return None


def flags_keychain(credential: Credential) -> StaticKeychain:
    """The flags' credential as a source that names the flags it came from."""
    return StaticKeychain(
        credential,
        name=FLAG_SOURCE,
        origin="--registry-token (IMGCTL_TOKEN)"
        if credential.registry_token
        else "--registry-username/--registry-password (IMGCTL_USERNAME/IMGCTL_PASSWORD)",
    )
