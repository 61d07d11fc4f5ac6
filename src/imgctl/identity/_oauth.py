"""OAuth 2.0 token exchange (RFC 8693) names shared by the client and the built-in issuer."""

from __future__ import annotations

# URNs, not secrets (ruff's S105 reads "token" in the names as a password).
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
SSH_JWT_ISSUER = "kubectl-ssh-oidc"
CONNECTOR_ID = "ssh"
SCOPE = "openid email groups profile"
