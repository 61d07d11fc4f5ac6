"""Whether a host is this machine: loopback traffic may go over plain HTTP, nothing else may."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: a host, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
