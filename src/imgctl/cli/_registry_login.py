"""``imgctl registry login`` and ``logout``: registry credentials in docker's config file.

They sit under ``imgctl registry`` (as in ``helm registry login``) because ``imgctl auth login``
is the OIDC login to the promotion server. The file written is the one the keychain reads first
(``authn._dockerlogin``); docker, crane, skopeo and helm read it too. This module completes the
``imgctl registry`` group that ``_registry_serve`` starts (``serve``): ``COMMANDS`` loads it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from imgctl.cli._exit import EXIT_INVALID, fail, stop, warn
from imgctl.cli._flags import CaCertOpt, InsecureOpt
from imgctl.cli._registry_serve import app
from imgctl.errors import ImgctlError

__all__ = ["app"]

RegistryArg = Annotated[
    str,
    typer.Argument(
        metavar="REGISTRY",
        help="Registry host[:port], e.g. ghcr.io or localhost:5000 (docker.io for Docker Hub).",
    ),
]


@app.command("login")
def login(
    registry: RegistryArg,
    username: Annotated[str, typer.Option("--username", "-u", help="User name at the registry.")],
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            "-p",
            help="Password or access token. Insecure: other users see it in ps and it stays in "
            "your shell history; use --password-stdin.",
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password (or token) from stdin: the whole input."
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check the credentials with the registry before saving them (GET /v2/, and "
            "its token server for Bearer auth), as docker login does.",
        ),
    ] = True,
    insecure: InsecureOpt = None,
    ca_cert_path: CaCertOpt = None,
) -> None:
    """Log in to a registry: save its credentials in docker's config.json for every command.

    Writes auths.REGISTRY.auth (base64 of USER:PASSWORD) to $DOCKER_CONFIG/config.json, else
    ~/.docker/config.json (mode 0600, other settings kept), after checking them with the
    registry. Every registry command (and docker, crane, skopeo) then finds them.
    """
    import os

    from imgctl.authn import Credential
    from imgctl.authn._dockerlogin import DockerLogin, docker_config_path

    registry = _registry(registry)
    if password is not None and password_stdin:
        fail("give --password or --password-stdin, not both", EXIT_INVALID)
    if password_stdin:
        password = sys.stdin.read()
        # A trailing newline is echo's or the file's, not the password's (docker trims it too).
        password = password.removesuffix("\n").removesuffix("\r")
    elif password is not None:
        warn("a password on the command line is visible to other users: use --password-stdin")
    else:
        from imgctl.cli._flags import ask_passphrase

        password = ask_passphrase(f"Password for {username} at {registry}: ")
        if password is None:
            fail(
                "no password: pipe it in with --password-stdin (no terminal to ask on)",
                EXIT_INVALID,
            )
    if not username or not password:
        fail("the user name and the password must not be empty", EXIT_INVALID)
    store = DockerLogin(docker_config_path(os.environ, Path.home()))
    try:
        store.load()  # refuse a broken file before asking the registry anything
        if verify:
            _check(registry, Credential(username, password), insecure or [], ca_cert_path or [])
        helper = store.helper_for(registry)
        store.login(registry, username, password)
    except ImgctlError as exc:
        stop(exc)
    except KeyboardInterrupt:
        from imgctl.cli._exit import interrupted

        interrupted()
    if helper is not None:
        warn(
            f"{store.path} names the credential helper docker-credential-{helper} for "
            f"{registry}: what it holds wins over the saved login (remove the helper setting "
            "to use this one)"
        )
    print(f"imgctl: credentials for {registry} saved in {store.path}", file=sys.stderr)
    print("Login Succeeded")


@app.command("logout")
def logout(registry: RegistryArg) -> None:
    """Log out of a registry: remove its entry from docker's config.json.

    Other entries and settings are kept. Not logged in is not an error (as with docker).
    """
    import os

    from imgctl.authn._dockerlogin import DockerLogin, docker_config_path

    registry = _registry(registry)
    store = DockerLogin(docker_config_path(os.environ, Path.home()))
    try:
        removed = store.logout(registry)
    except ImgctlError as exc:
        stop(exc)
    if removed:
        print(f"Removing login credentials for {registry} from {store.path}")
    else:
        print(f"Not logged in to {registry}", file=sys.stderr)


def _registry(value: str) -> str:
    """A registry host[:port] as given (a URL's scheme and path dropped, as docker does)."""
    host = value.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    if not host or any(c.isspace() for c in host) or "@" in host:
        fail(f"{value!r} is not a registry host[:port]", EXIT_INVALID)
    return host


def _check(
    registry: str, credential: object, insecure: list[str], ca_cert_paths: list[Path]
) -> None:
    """GET /v2/ with ``credential`` (a Bearer token without scope first, where asked)."""
    import asyncio

    from imgctl.authn import Credential, StaticKeychain
    from imgctl.cli._flags import Connection
    from imgctl.errors import AuthenticationError
    from imgctl.remote import RegistryClient

    assert isinstance(credential, Credential)
    _, options = Connection(
        insecure_registries=insecure, ca_cert_paths=ca_cert_paths, anonymous=True
    ).settings()
    keychain = StaticKeychain(credential, [registry], name="login", origin="imgctl registry login")

    async def check() -> None:
        async with RegistryClient(keychain, options) as client:
            response = await client._request("GET", registry, "", "/v2/")
            await response.aclose()
            if response.status_code == 401:
                raise AuthenticationError(
                    f"{registry} refused the credentials of {credential.username!r} (401)",
                    status=401,
                    hint="check the user name and password (or token); nothing was saved",
                )
            await client._raise_for_status(response, f"GET /v2/ of {registry}", registry, "")

    asyncio.run(check())
