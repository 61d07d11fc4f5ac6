"""The default keychain: which credential sources imgctl asks, and in which order.

This module alone knows the order: env entries, the cloud keychains (ECR, GCP, ACR, ghcr, as the
IaaS switches say), the flags, then docker/podman config; the first source with an answer wins.
``imgctl auth explain`` walks the same chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from imgctl.authn._acr import AzureKeychain
from imgctl.authn._dockerconfig import DockerConfigKeychain
from imgctl.authn._ecr import ECRKeychain
from imgctl.authn._envcreds import EnvKeychain
from imgctl.authn._flags import flags_keychain
from imgctl.authn._gcp import GCPKeychain
from imgctl.authn._ghcr import GitHubKeychain
from imgctl.authn._keychain import Credential, Keychain, MultiKeychain, SourceKeychain
from imgctl.errors import CredentialError, UsageError

__all__ = ["active_keychains", "cloud_keychains", "default_keychain", "iaas_auth_enabled"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CredentialError(
        f"{name}={value!r} is not a boolean",
        hint="set it to true or false (or 1/0, yes/no, on/off)",
    )


def iaas_auth_enabled(environ: Mapping[str, str]) -> bool:
    """Whether cloud (IaaS) credential sources are on: ``IMGCTL_ENABLE_IAAS_AUTH``, default true.

    ``IMGPKG_ENABLE_IAAS_AUTH`` is honoured when ours is unset, for users coming from imgpkg.
    An empty value counts as unset.
    """
    return _iaas_switch(environ) is not False


def _iaas_switch(environ: Mapping[str, str]) -> bool | None:
    """The IaaS switch as set (None when neither variable is)."""
    for name in ("IMGCTL_ENABLE_IAAS_AUTH", "IMGPKG_ENABLE_IAAS_AUTH"):
        value = environ.get(name, "")
        if value.strip():
            return _parse_bool(name, value)
    return None


# Keychain names in IMGCTL_/IMGPKG_ACTIVE_KEYCHAINS: imgpkg's (gke, aks, ecr, github) and
# imgctl's source names.
_ACTIVE_NAMES = {
    "gke": "gcp",
    "gcp": "gcp",
    "aks": "azure",
    "azure": "azure",
    "ecr": "ecr",
    "github": "ghcr",
    "ghcr": "ghcr",
}


def active_keychains(environ: Mapping[str, str]) -> frozenset[str] | None:
    """The cloud sources ``IMGCTL_ACTIVE_KEYCHAINS`` (else imgpkg's) names; None: not set."""
    for variable in ("IMGCTL_ACTIVE_KEYCHAINS", "IMGPKG_ACTIVE_KEYCHAINS"):
        value = environ.get(variable, "")
        if not value.strip():
            continue
        chosen: set[str] = set()
        for item in value.split(","):
            name = _ACTIVE_NAMES.get(item.strip().lower())
            if name is None:
                raise CredentialError(
                    f"{variable}={value!r} names an unknown keychain {item.strip()!r}",
                    hint="give a comma-separated list of aks, ecr, gke, github (or azure, gcp, "
                    "ghcr)",
                )
            chosen.add(name)
        return frozenset(chosen)
    return None


def cloud_keychains(environ: Mapping[str, str] | None = None) -> list[SourceKeychain]:
    """ECR, GCP, Azure and ghcr keychains in that order, as the IaaS switches say.

    ``IMGCTL_ENABLE_IAAS_AUTH`` (or imgpkg's) false: none; true: all. Unset: those
    ``IMGCTL_ACTIVE_KEYCHAINS`` (or imgpkg's ``IMGPKG_ACTIVE_KEYCHAINS``) names, else all.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    switch = _iaas_switch(env)
    active = active_keychains(env)  # checked even when unused: a typo is an error
    if switch is False:
        return []
    keychains: list[SourceKeychain] = [
        ECRKeychain(env),
        GCPKeychain(env),
        AzureKeychain(env),
        GitHubKeychain(env),
    ]
    if switch is None and active is not None:
        keychains = [k for k in keychains if k.name in active]
    return keychains


def default_keychain(
    environ: Mapping[str, str],
    home: Path,
    *,
    flags: Credential | None = None,
    anonymous: bool = False,
) -> MultiKeychain:
    """The full keychain: env entries, cloud keychains, flags, then docker/podman config.

    ``anonymous`` (``--registry-anon``) answers anonymous at the flags' place in the order:
    env entries and cloud keychains still apply to their hosts, docker config is not read.
    """
    if anonymous and flags is not None:
        raise UsageError("--registry-anon cannot be combined with registry credentials flags")
    chain: list[Keychain] = [EnvKeychain(environ), *cloud_keychains(environ)]
    if anonymous:
        return MultiKeychain(*chain)
    if flags is not None:
        chain.append(flags_keychain(flags))
    chain.append(DockerConfigKeychain(environ, home))
    return MultiKeychain(*chain)
