"""Where registry credentials come from: the keychain interface and every credential source.

Sources: environment entries (``IMGCTL_CREDS_*``, imgpkg's ``IMGPKG_REGISTRY_*``), Amazon ECR,
Google (GCR, Artifact Registry), Azure ACR, ghcr, the command-line flags, and docker/podman
config files with their credential helpers. ``default_keychain`` alone knows their order
(``_default``). Every keychain explains itself (``explain``: which source answered and why,
never the secret); ``imgctl auth explain`` prints that.
"""

from imgctl._internal import lean_httpx  # noqa: F401  (before any import of httpx)
from imgctl.authn._acr import AzureKeychain, is_acr_host
from imgctl.authn._default import (
    active_keychains,
    cloud_keychains,
    default_keychain,
    iaas_auth_enabled,
)
from imgctl.authn._dockerconfig import DockerConfigKeychain
from imgctl.authn._ecr import ECRKeychain, ECRRegistry, parse_ecr_host
from imgctl.authn._envcreds import EnvKeychain
from imgctl.authn._flags import flag_credential
from imgctl.authn._gcp import GCPKeychain, is_gcp_host
from imgctl.authn._ghcr import GitHubKeychain
from imgctl.authn._keychain import (
    ANONYMOUS,
    AnonymousKeychain,
    Credential,
    Keychain,
    MultiKeychain,
    Resolution,
    SourceKeychain,
    StaticKeychain,
)
from imgctl.authn._sides import SideKeychain, split_creds

__all__ = [
    "ANONYMOUS",
    "AnonymousKeychain",
    "AzureKeychain",
    "Credential",
    "DockerConfigKeychain",
    "ECRKeychain",
    "ECRRegistry",
    "EnvKeychain",
    "GCPKeychain",
    "GitHubKeychain",
    "Keychain",
    "MultiKeychain",
    "Resolution",
    "SideKeychain",
    "SourceKeychain",
    "StaticKeychain",
    "active_keychains",
    "cloud_keychains",
    "default_keychain",
    "flag_credential",
    "iaas_auth_enabled",
    "is_acr_host",
    "is_gcp_host",
    "parse_ecr_host",
    "split_creds",
]
