"""HOST:PORT addresses and listening sockets for every imgctl daemon, parsed and bound one way.

Each daemon binds its own socket before handing it to uvicorn, so that a port already in use is
refused with a clear error (uvicorn would log and exit) and no listener ever shares its port
with another process (SO_REUSEPORT would let two servers split one port's traffic).
"""

from __future__ import annotations

import errno
import socket

from imgctl.errors import UsageError

__all__ = ["bound_address", "fast_event_loop", "listen", "split_address"]


def split_address(flag: str, address: str, example: str = "127.0.0.1:8080") -> tuple[str, int]:
    """``(host, port)`` of HOST:PORT or [v6]:PORT given to ``flag``; UsageError if malformed."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(
            f"invalid address {address!r} for {flag}: expected HOST:PORT, e.g. {example}"
        )
    return host, int(port)


def listen(flag: str, address: str, example: str = "127.0.0.1:8080") -> socket.socket:
    """A non-blocking socket listening on ``address``; UsageError naming ``flag`` if impossible."""
    host, port = split_address(flag, address, example)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {address} ({flag}): {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # SO_REUSEADDR only lets a restart bind while old connections sit in TIME_WAIT; unlike
        # SO_REUSEPORT it does not let a second listener onto a port that is in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {address} ({flag}): {exc.strerror or exc}",
            hint="another process listens there: stop it or choose another port"
            if exc.errno == errno.EADDRINUSE
            else None,
        ) from None
    sock.setblocking(False)
    return sock


def bound_address(sock: socket.socket) -> str:
    """HOST:PORT (or [v6]:PORT) the socket is bound to, with the port the kernel chose."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def fast_event_loop() -> None:
    """Install uvloop, the faster event loop ``uvicorn.run`` would pick, for every daemon."""
    try:
        import uvloop  # a dependency through uvicorn[standard]
    except ImportError:  # pragma: no cover
        return
    uvloop.install()
