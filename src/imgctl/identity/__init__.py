"""Who is asking: SSH-signed JWTs, the token exchange, OIDC verification, the built-in issuer.

Client side: ``imgctl.identity.sshjwt`` finds SSH keys (ssh-agent first, then key files) and
builds the SSH-signed JWT that Dex's SSH connector verifies; ``imgctl.identity.exchange`` trades
it for an OIDC token and caches it. Server side: ``imgctl.identity.verifier`` checks OIDC tokens
against the issuer's JWKS; ``imgctl.identity.issuer`` is a small OIDC issuer with Dex's SSH
connector semantics, for teams without Dex.
"""
