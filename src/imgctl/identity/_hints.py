"""Why a token was refused, said so a person can act on it: the cause and what to do.

Two places refuse: the issuer (the token exchange answers ``access_denied``) and the imgctl
server (UNAUTHENTICATED, ``token rejected (REASON): ...``). Each cause gets its own message and
hint here, so a wrong audience is never answered "ask an admin to add your public key".
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["denial_cause", "server_reason", "server_refusal"]

# Where each client setting comes from, for hints that say what to change.
AUDIENCE_SOURCES = "--audience, IMGCTL_AUDIENCE, `audience` in config.toml"
ISSUER_SOURCES = "--dex-url, DEX_URL, `dex_url` in config.toml"

_REASON = re.compile(r"token rejected \(([a-z_]+)\)")
_ALLOWED = re.compile(r"\(allowed: ([^)]*)\)")


def denial_cause(description: str) -> str:
    """Which kind of ``access_denied`` the issuer's description names.

    ``key``: no configured key verifies (the next key may); ``user``: the key is another
    user's; anything else is about the request, not the key, and the same for every key:
    ``instance`` (the JWT's aud, i.e. the issuer URL the client used), ``audience``,
    ``issuer`` (the JWT's iss), ``clock``, ``replay``; ``unknown`` when the issuer gives no
    reason (Dex never does).
    """
    text = description.lower()
    if not text:
        return "unknown"
    if "no configured key verifies" in text or "malformed ssh jwt" in text:
        return "key"
    if "sub is not the user" in text:
        return "user"
    if text.startswith("aud must be"):
        return "instance"
    if "target_audience" in text or "audience does not match" in text:
        return "audience"
    if "not an allowed issuer" in text:
        return "issuer"
    if "expired" in text or "not valid yet" in text or "in the future" in text:
        return "clock"
    if "already used" in text:
        return "replay"
    return "unknown"


def issuer_denial(
    cause: str, description: str, *, issuer: str, audience: str, user: str
) -> tuple[str, str]:
    """(message, hint) for an issuer's refusal that is about the request, not the key."""
    allowed = _ALLOWED.search(description)
    said = f" ({description})" if description else ""
    if cause == "instance":
        right = description.split("aud must be", 1)[1].strip()
        return (
            f"the issuer at {issuer} knows itself as {right}",
            f"use --dex-url {right} (or DEX_URL, `dex_url` in config.toml)",
        )
    if cause == "audience":
        return (
            f"the issuer at {issuer} does not issue tokens for audience {audience!r}"
            + (f" (it allows: {allowed.group(1)})" if allowed else said),
            "pass the imgctl server's audience with --audience (or IMGCTL_AUDIENCE, "
            "`audience` in config.toml), or give --server and imgctl asks the server for it",
        )
    if cause == "issuer":
        return (
            f"the issuer at {issuer} does not accept SSH JWTs from kubectl-ssh-oidc{said}",
            "ask its admin to add kubectl-ssh-oidc to the SSH connector's allowed_issuers",
        )
    if cause == "clock":
        now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        return (
            f"the issuer at {issuer} refused the SSH JWT's times{said}: this machine's clock "
            f"({now}) or the issuer's is off",
            "compare `date -u` here and on the issuer; fix the clock that is wrong",
        )
    if cause == "replay":
        return (f"the issuer at {issuer} refused the SSH JWT{said}", "try again")
    return (
        f"the issuer at {issuer} refused the SSH JWT for user {user!r}{said}",
        "check --username, --audience and this machine's clock",
    )


def server_reason(details: str) -> str | None:
    """The verifier's reason in an UNAUTHENTICATED answer (``token rejected (REASON)``)."""
    match = _REASON.search(details)
    return match.group(1) if match else None


def server_said(details: str) -> str:
    """The server's refusal, briefly: ``token rejected (REASON)``, else its message."""
    reason = server_reason(details)
    if reason:
        return f"token rejected ({reason})"
    return details.split("; ", 1)[0]


def server_refusal(
    details: str,
    claims: Mapping[str, Any],
    *,
    server: str,
    expected_issuer: str | None,
    expected_audience: str | None,
) -> tuple[str, str]:
    """(message, hint) for a fresh token the server refused, from its reason and the claims.

    ``claims`` are the token's, unverified (what the client asked for and got);
    ``expected_*`` are what the server said in ServerInfo (None if it was not asked).
    """
    reason = server_reason(details)
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else [a for a in aud or () if isinstance(a, str)]
    iss = claims.get("iss")
    brief = server_said(details)
    if isinstance(iss, str) and expected_issuer and iss.rstrip("/") != expected_issuer.rstrip("/"):
        # Checked first: a token from another issuer also shows up as unknown_kid or signature.
        return (
            f"your token was issued by {iss}, but the server at {server} trusts tokens from "
            f"{expected_issuer} ({brief})",
            f"remove the issuer setting ({ISSUER_SOURCES}) so imgctl asks the server, or "
            f"pass --dex-url {expected_issuer}",
        )
    if reason == "audience" or (
        reason is None and expected_audience and expected_audience not in auds
    ):
        expected = expected_audience or "another audience"
        return (
            f"your token is for audience {', '.join(map(repr, auds)) or 'none'}, but the server "
            f"at {server} expects {expected!r} ({brief})",
            f"remove the audience setting ({AUDIENCE_SOURCES}) so imgctl asks the server, or "
            f"pass --audience {expected}",
        )
    full = details.split("; ", 1)[0]
    if reason in ("expired", "not_yet_valid", "issued_in_future"):
        exp = claims.get("exp")
        until = (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(exp))
            if isinstance(exp, int | float)
            else "unknown"
        )
        return (
            f"the server at {server} refused a token just issued, valid until {until} ({full}): "
            "a clock is off",
            "compare `date -u` here, on the issuer and on the server (the server allows "
            "OIDC_LEEWAY, 30 s by default)",
        )
    if reason in ("unknown_kid", "signature"):
        return (
            f"the server at {server} cannot verify a token just issued by "
            f"{expected_issuer or iss} ({full})",
            "its issuer's keys may have changed or another issuer answers at that URL: run "
            "`imgctl auth logout --all` and try again; if it persists, ask the server's admin "
            "to check OIDC_ISSUER_URL",
        )
    if reason == "groups_missing":
        return (
            f"the server at {server} refused your token ({full})",
            "the issuer must grant the 'groups' scope to this client",
        )
    return (f"the server at {server} refused your token ({details})", "log in again")
