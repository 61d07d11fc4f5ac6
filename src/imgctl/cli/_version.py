"""``imgctl version``: the client's version, commit, build date, Python and platform; the server's.

Like ``kubectl version``: the client's side always, the server's when one is configured
(--server, IMGCTL_SERVER or the config file's ``[client] server``), asked with ServerInfo
under a short deadline. A server that does not answer is a warning line, never a failure:
the command is what a bug report starts with, and must work when nothing else does.

The version, commit and build date come from ``imgctl/_version.py``, which setuptools-scm
writes when imgctl is built or installed (``imgctl.__version__``); a source checkout that has
none asks git; anything still unknown is "unknown".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from imgctl.cli._exit import warn
from imgctl.cli._flags import (
    SERVER_UNREACHABLE_HINT,
    ClientCertOptForServer,
    ClientKeyOptForServer,
    OutputOpt,
    ServerCaOpt,
    ServerOpt,
    TlsOpt,
)
from imgctl.cli._output import Output

__all__ = ["app", "client_version"]

app = typer.Typer()

UNKNOWN = "unknown"
# ServerInfo is one small call: a server that takes longer is as good as down for this page.
_SERVER_TIMEOUT = 5.0


def _git(checkout: Path, *args: str) -> str | None:
    """What ``git -C checkout args`` prints, or None (no git, not a checkout, any failure)."""
    import subprocess

    try:
        result = subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else None


def _checkout() -> Path | None:
    """The git work tree imgctl runs from (src/imgctl in a checkout), else None."""
    import imgctl

    package = Path(imgctl.__file__).resolve().parent
    root = package.parent.parent  # <checkout>/src/imgctl
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def _hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def client_version() -> dict[str, str]:
    """The client's side: version, git commit, build date, Python, platform (never fails)."""
    import platform

    import imgctl

    version: str = getattr(imgctl, "__version__", None) or UNKNOWN
    commit: str | None = getattr(imgctl, "__commit__", None)
    built: str | None = getattr(imgctl, "__build_date__", None)
    checkout = _checkout() if commit is None or built is None else None
    if checkout is not None:
        # Running from a source checkout that was never built: git knows the rest.
        commit = commit or _git(checkout, "rev-parse", "--short=12", "HEAD")
        built = built or _git(checkout, "log", "-1", "--format=%cd", "--date=iso-strict")
        if version.endswith("+unknown") or version == UNKNOWN:
            described = _git(checkout, "describe", "--tags", "--always", "--dirty")
            version = described or version
    if commit and commit.startswith("g") and _hex(commit[1:]):
        commit = commit[1:]  # setuptools-scm's node is g<hash>, as git describe writes it
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine or UNKNOWN)
    return {
        "version": version,
        "gitCommit": commit or UNKNOWN,
        "buildDate": built or UNKNOWN,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": f"{sys.platform}/{arch}",
    }


def _server_version(
    server: str,
    tls: bool | None,
    ca_cert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> dict[str, str] | None:
    """The server's version from ServerInfo, or None after a warning line (never fails)."""
    import asyncio

    import grpc

    from imgctl.cli._promote import ClientFlags, _answered, _channel
    from imgctl.v1 import imgctl_pb2 as pb
    from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

    flags = ClientFlags(
        server=server, tls=tls, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key
    )

    async def ask() -> Any:
        channel, _ = _channel(flags)
        async with channel:
            stub = pb_grpc.ImgCtlStub(channel)  # type: ignore[no-untyped-call]
            return await stub.ServerInfo(pb.ServerInfoRequest(), timeout=_SERVER_TIMEOUT)

    try:
        info = asyncio.run(ask())
    except grpc.aio.AioRpcError as error:
        name = error.code().name
        details = error.details() or name
        if name == "UNAVAILABLE" and not _answered(error):
            warn(
                f"cannot reach the imgctl server at {server}: {details}; {SERVER_UNREACHABLE_HINT}"
            )
        elif name == "DEADLINE_EXCEEDED":
            warn(f"the imgctl server at {server} did not answer in {_SERVER_TIMEOUT:g} s")
        else:
            warn(f"the imgctl server at {server} answered {name}: {details}")
        return None
    return {"version": info.version or UNKNOWN, "address": server}


@app.command()
def version(
    client: Annotated[
        bool, typer.Option("--client", help="Only the client's version: ask no server.")
    ] = False,
    output: OutputOpt = Output.text,
    server: ServerOpt = None,
    tls: TlsOpt = None,
    ca_cert: ServerCaOpt = None,
    client_cert: ClientCertOptForServer = None,
    client_key: ClientKeyOptForServer = None,
) -> None:
    """Print imgctl's version, git commit and build date, Python and platform; and the server's.

    The server's version is asked for when a server is configured (--server, IMGCTL_SERVER or
    the config file) and --client is not given; a server that cannot be reached is a warning
    on stderr, and the exit status stays 0.
    """
    from imgctl.cli._settings import resolve

    document: dict[str, Any] = {"clientVersion": client_version()}
    address = None if client else resolve(server, "server")
    if address:
        found = _server_version(str(address), tls, ca_cert, client_cert, client_key)
        if found is not None:
            document["serverVersion"] = found
    if output is not Output.text:
        from imgctl.cli._output import print_document

        print_document(document, output)
        return
    side = document["clientVersion"]
    print(f"Client Version: {side['version']}")
    print(f"Git Commit:     {side['gitCommit']}")
    print(f"Build Date:     {side['buildDate']}")
    print(f"Python:         {side['python']}")
    print(f"Platform:       {side['platform']}")
    if "serverVersion" in document:
        print(f"Server Version: {document['serverVersion']['version']} ({address})")
