"""TLS settings per registry: extra CA bundles, a client certificate for mTLS, verification.

``TLSConfig`` is what one registry gets; ``RegistryTLS`` holds the default and per-host
overrides (from the config file). Contexts are built once per distinct config and reused.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from imgctl.errors import UsageError
from imgctl.oci.reference import canonical_registry

__all__ = ["RegistryTLS", "TLSConfig"]

CA_FLAG = "--registry-ca-cert-path"
CERT_FLAG = "--registry-client-cert"
KEY_FLAG = "--registry-client-key"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """How to talk TLS to a registry."""

    ca_files: tuple[str, ...] = ()
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.client_key and not self.client_cert:
            raise UsageError(
                f"a client key was given without a client certificate; pass {CERT_FLAG} too"
            )

    def context(self) -> ssl.SSLContext:
        """The SSL context for this config (built once per distinct config)."""
        return _context(self)

    def describe(self) -> str:
        """One line saying what this config does, for ``imgctl auth explain``."""
        parts = ["certificates verified" if self.verify else "certificates NOT verified"]
        if self.ca_files:
            parts.append("extra CAs " + ", ".join(self.ca_files))
        if self.client_cert:
            parts.append(f"client certificate {self.client_cert}")
        return "; ".join(parts)


@lru_cache(maxsize=32)
def _context(config: TLSConfig) -> ssl.SSLContext:
    if not config.verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context()
        try:
            import certifi

            context.load_verify_locations(certifi.where())
        except ImportError:  # pragma: no cover - certifi ships with httpx
            pass
        for path in config.ca_files:
            try:
                context.load_verify_locations(path)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"cannot load CA certificates from {path}: {_reason(exc)}",
                    hint=f"{CA_FLAG} takes a PEM file of CA certificates",
                ) from None
    if config.client_cert:
        try:
            context.load_cert_chain(config.client_cert, config.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"cannot load the client certificate {config.client_cert}"
                + (f" with key {config.client_key}" if config.client_key else "")
                + f": {_reason(exc)}",
                hint=f"{CERT_FLAG} takes a PEM certificate (chain) and {KEY_FLAG} its "
                "unencrypted PEM key (or put both in the certificate file)",
            ) from None
    return context


def _reason(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or getattr(exc, "reason", None) or str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class RegistryTLS:
    """The TLS config for every registry, with per-host overrides."""

    default: TLSConfig = field(default_factory=TLSConfig)
    hosts: Mapping[str, TLSConfig] = field(default_factory=dict)

    def for_registry(self, registry: str) -> TLSConfig:
        """The config that applies to ``registry`` (host[:port])."""
        if self.hosts:
            registry = canonical_registry(registry)
            for host, config in self.hosts.items():
                if canonical_registry(host) == registry:
                    return config
        return self.default
