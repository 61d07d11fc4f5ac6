"""Identity commands: turn flags into login settings, get a token, run the issuer."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgctl.cli._registry import fail
from imgctl.errors import ImgctlError

if TYPE_CHECKING:
    from imgctl.identity.exchange import IssuedToken, LoginSettings


@dataclass(frozen=True)
class Login:
    """The login flags every command that needs a token shares."""

    dex_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    pubkey_file: Path | None = None
    username: str | None = None
    audience: str | None = None
    no_cache: bool = False

    def settings(self) -> LoginSettings:
        """The exchange settings these flags describe."""
        import os

        from imgctl.cli._settings import resolve
        from imgctl.identity.exchange import LoginSettings, default_username

        try:
            dex_url = resolve(self.dex_url, "dex_url")
            client_id = resolve(self.client_id, "client_id", "imgctl")
            client_secret = resolve(self.client_secret, "client_secret")
            audience = resolve(self.audience, "audience")
        except ImgctlError as exc:
            fail(str(exc))
        if not dex_url:
            fail("no issuer: pass --dex-url or set DEX_URL (Dex, or `imgctl idp serve`)")
        return LoginSettings(
            dex_url=dex_url,
            username=self.username or default_username(os.environ),
            client_id=client_id,
            client_secret=client_secret,
            audience=audience,
            pubkey_file=self.pubkey_file,
        )

    def token(self) -> IssuedToken:
        """Get a token (cached unless --no-cache); failures end the command with one line."""
        import asyncio
        import os

        from imgctl.identity.exchange import TokenCache, default_cache_dir, obtain_token

        settings = self.settings()
        home = Path.home()
        cache = TokenCache(default_cache_dir(os.environ, home))
        if self.no_cache:
            cache.clear()
        try:
            return asyncio.run(
                obtain_token(
                    settings,
                    environ=os.environ,
                    home=home,
                    passphrase=_ask_passphrase,
                    cache=cache,
                )
            )
        except ImgctlError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            print("imgctl: interrupted", file=sys.stderr)
            raise SystemExit(130) from None


def _ask_passphrase(prompt: str) -> str | None:
    """Ask on the terminal; without one there is nobody to ask."""
    import getpass

    try:
        with open("/dev/tty"):  # only probing that a terminal exists
            pass
    except OSError:
        return None
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def print_token(login: Login) -> None:
    """``imgctl token``: the token alone on stdout."""
    print(login.token().token)


def login(login: Login, *, show_token: bool) -> None:
    """``imgctl auth login``: who the issuer says we are, and until when."""
    import time

    from imgctl.identity.exchange import unverified_claims

    issued = login.token()
    claims = unverified_claims(issued.token)
    who = claims.get("name") or login.settings().username
    email = f" <{claims['email']}>" if claims.get("email") else ""
    groups = claims.get("groups")
    group_text = ", ".join(map(str, groups)) if isinstance(groups, list) and groups else "none"
    until = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(issued.expires_at))
    how = "cached token" if issued.source == "cache" else f"signed with {issued.source}"
    print(f"logged in as {who}{email} at {login.settings().dex_url}")
    print(f"groups: {group_text}")
    print(f"token for audience {claims.get('aud')!s}, valid until {until} ({how})")
    if show_token:
        print(issued.token)


def idp_serve(
    config: Path, address: str, issuer: str | None, tls_cert: Path | None, tls_key: Path | None
) -> None:
    """``imgctl idp serve``."""
    from imgctl.identity.issuer import load_issuer_config, serve

    try:
        loaded = load_issuer_config(config)
        serve(
            loaded,
            address,
            issuer=issuer,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
        )
    except ImgctlError as exc:
        fail(str(exc))


def idp_rotate_key(config: Path) -> None:
    """``imgctl idp rotate-key``."""
    from imgctl.identity.issuer import KeyStore, load_issuer_config

    try:
        loaded = load_issuer_config(config)
        keys = KeyStore(loaded.keys_dir, token_ttl=loaded.token_ttl, clock_skew=loaded.clock_skew)
        new = keys.rotate()
    except ImgctlError as exc:
        fail(str(exc))
    published = ", ".join(k.kid for k in keys.published())
    print(f"new signing key {new.kid} in {loaded.keys_dir}")
    print(f"published keys: {published}")
