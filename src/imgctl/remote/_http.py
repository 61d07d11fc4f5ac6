"""HTTP plumbing under the registry client: cookie-free clients, proxies, errors.

Proxies are read from the environment as curl reads them; failed connections and error bodies
become readable imgctl errors.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from imgctl.errors import (
    PermanentConnectionError,
    RefusedConnectionError,
    RegistryError,
    TransportError,
    UnknownHostError,
)
from imgctl.oci.reference import DEFAULT_REGISTRY
from imgctl.remote._tls import CA_FLAG, CERT_FLAG, KEY_FLAG
from imgctl.remote._transport import ConnectRefused, UnknownHost

__all__ = [
    "RegistryHTTP",
    "api_host",
    "error_detail",
    "proxy_routes",
    "transport_error",
]

_DOCKER_HUB_API = "registry-1.docker.io"
_CLIENT_CERT_ALERTS = ("ALERT_CERTIFICATE_REQUIRED", "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA")


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore Set-Cookie."""


class RegistryHTTP(httpx.AsyncClient):
    """An httpx client that keeps no cookies.

    The distribution API does not use them (crane and skopeo keep none either), and httpx's
    cookie handling builds urllib requests for every response: about a twentieth of the
    client's CPU in a copy.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


_NO_COOKIES = _NoCookies()


def proxy_routes(proxies: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Mount patterns for HTTP_PROXY/HTTPS_PROXY/ALL_PROXY and NO_PROXY, read as curl does.

    ``proxies`` maps ``http``/``https``/``all``/``no`` as ``urllib.request.getproxies()``
    does; None reads the environment. A pattern mapped to None goes direct.
    """
    if proxies is None:
        from urllib.request import getproxies_environment

        proxies = getproxies_environment()
    routes: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        proxy = proxies.get(scheme)
        if proxy:
            routes[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    if not routes:
        return {}
    for entry in (e.strip() for e in proxies.get("no", "").split(",")):
        if not entry:
            continue
        if entry == "*":
            return {}
        if "://" in entry:
            routes[entry] = None
            continue
        try:
            address = ipaddress.ip_address(entry.strip("[]"))
        except ValueError:
            # Like curl: "example.com" covers itself and its subdomains, ".example.com" only
            # the subdomains.
            routes[f"all://*{entry}"] = None
            continue
        routes[f"all://[{address}]" if address.version == 6 else f"all://{address}"] = None
    return routes


def api_host(registry: str) -> str:
    """The host that serves ``registry``'s API (Docker Hub's is not docker.io)."""
    return _DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry


def error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """First distribution error code and a readable message from an error body."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError):
        errors = None
    if errors and isinstance(errors, list) and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or "") or None
        message = str(first.get("message") or code or "")
        detail = first.get("detail")
        if detail and isinstance(detail, str | int | float):
            message += f": {detail}"
        return code, message
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    return None, text or response.reason_phrase


def transport_error(url: str, exc: httpx.TransportError) -> TransportError:
    """A failed connection to ``url`` as an imgctl error, with a hint when the cause is known."""
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    if isinstance(exc, ConnectRefused):
        # Not transient like a reset or a 503 (a registry restarting behind a load balancer
        # answers 502/503): the address is wrong or nothing runs there. Not retried.
        return RefusedConnectionError(
            f"{parts.netloc} refused the connection ({where}): nothing listens there",
            hint="check the registry address and port, and that the registry is running",
            host=parts.netloc,
        )
    if isinstance(exc, UnknownHost):
        # A typo or a name only another network knows: retrying asks the same resolver again.
        return UnknownHostError(
            f"{exc} ({where})",
            hint="check the registry's host name: this machine's DNS has no address for it",
            host=parts.netloc,
        )
    reason = str(exc) or type(exc).__name__
    hint = None
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        hint = (
            f"the registry's certificate is not trusted: pass its CA with {CA_FLAG} "
            "(or mark the host --registry-insecure)"
        )
    elif any(alert in reason.upper() for alert in _CLIENT_CERT_ALERTS):
        # The server's TLS alert: it wants a client certificate, or refused the one we sent.
        hint = (
            f"the registry requires a client certificate it trusts: pass {CERT_FLAG} and {KEY_FLAG}"
        )
    elif isinstance(exc, httpx.ConnectError):
        hint = "check the registry address and that it is running"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    return TransportError(f"cannot reach {where}: {reason}", hint=hint, host=parts.netloc)


def transfer_retryable(exc: BaseException) -> bool:
    """Whether a whole blob transfer that failed with ``exc`` is worth another try.

    A connection that failed, or an answer 429 or 5xx, yes; a refused connection or a host
    that does not resolve, no (waiting does not change them), nor any other answer.
    """
    if isinstance(exc, PermanentConnectionError):
        return False
    if isinstance(exc, TransportError):
        return True
    return (
        isinstance(exc, RegistryError)
        and exc.status is not None
        and (exc.status == 429 or exc.status >= 500)
    )
