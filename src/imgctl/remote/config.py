"""imgctl's user config file, and its ``[registry]`` table: TLS defaults and per-registry settings.

The file is TOML, at ``$IMGCTL_CONFIG`` or ``~/.config/imgctl/config.toml``::

    [registry]
    ca_cert_paths = ["/etc/ssl/corp-ca.pem"]     # extra CAs for every registry
    insecure = ["localhost:5000"]                 # plain HTTP / unverified TLS allowed

    [registry.hosts."harbor.corp.example.com"]
    ca_cert_paths = ["/etc/ssl/harbor-ca.pem"]
    client_cert = "~/.config/imgctl/harbor.crt"
    client_key = "~/.config/imgctl/harbor.key"
    verify_certs = true

The ``[client]`` table (server address, default environments, login settings) is read by the
commands that talk to an imgctl server. Flags and environment variables override the file
(flag > env > file > defaults baked in at build time > built-in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgctl._internal.messages import unknown_key
from imgctl.config import setting
from imgctl.errors import UsageError
from imgctl.remote._tls import RegistryTLS, TLSConfig

__all__ = [
    "HostConfig",
    "RegistryConfig",
    "config_file",
    "default_config_path",
    "insecure_hosts",
    "load_config_document",
    "load_registry_config",
    "resolve_tls",
]

# The same keys at the top (every registry) and under a host; the top also has "hosts".
_KEYS = frozenset({"ca_cert_paths", "client_cert", "client_key", "verify_certs", "insecure"})


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings for one registry from the config file; None means not set there."""

    ca_cert_paths: tuple[str, ...] = ()
    client_cert: str | None = None
    client_key: str | None = None
    verify_certs: bool | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """The ``registry:`` section: defaults for every registry plus per-host settings."""

    ca_cert_paths: tuple[str, ...] = ()
    client_cert: str | None = None
    client_key: str | None = None
    verify_certs: bool | None = None
    insecure: tuple[str, ...] = ()
    hosts: Mapping[str, HostConfig] = field(default_factory=dict)
    path: str | None = None


def config_file(flag: Path | None, environ: Mapping[str, str], home: Path) -> tuple[Path, bool]:
    """The user config file and whether it was named (a named file must exist).

    ``--config``, else ``$IMGCTL_CONFIG`` (the one place that reads it), else
    ``$XDG_CONFIG_HOME/imgctl/config.toml`` (``~/.config``).
    """
    named = setting(flag, "IMGCTL_CONFIG", environ, parse=lambda raw: Path(raw).expanduser())
    if named is not None:
        return named, True
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "imgctl" / "config.toml", False


def default_config_path(environ: Mapping[str, str], home: Path) -> Path:
    """``$IMGCTL_CONFIG``, else ``$XDG_CONFIG_HOME/imgctl/config.toml`` (``~/.config``)."""
    return config_file(None, environ, home)[0]


SECTIONS = frozenset({"client", "registry"})


def load_config_document(path: Path, *, required: bool = False) -> dict[str, Any]:
    """The whole config file as a dict; a missing file is empty unless ``required``."""
    return _read_document(path, required=required)[0]


def _read_document(path: Path, *, required: bool) -> tuple[dict[str, Any], str]:
    """The config file as a dict, and its text (for line numbers in errors)."""
    import tomllib

    from imgctl._internal.files import read_text

    if not required and not path.exists():
        return {}, ""
    try:
        text = read_text(path, "config file")
    except UsageError as exc:
        hint = "check IMGCTL_CONFIG / --config" if not path.exists() else exc.hint
        raise UsageError(exc.message, hint=hint) from None
    try:
        # TOML itself refuses a key defined twice, and its booleans and numbers are typed.
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    _check_keys(document, SECTIONS, str(path))
    return document, text


def load_registry_config(path: Path, *, required: bool = False) -> RegistryConfig:
    """Read the ``[registry]`` table of ``path``; a missing file gives the empty config."""
    document, text = _read_document(path, required=required)
    section = document.get("registry")
    if section is None:
        return RegistryConfig(path=str(path))
    where = f"{path}: registry"
    section = _mapping(section, where)
    _check_keys(section, _KEYS | {"hosts"}, where)
    hosts: dict[str, HostConfig] = {}
    for host, raw in _mapping(section.get("hosts") or {}, f"{where}.hosts").items():
        host_where = f"{where}.hosts.{host}"
        entry = _mapping(raw or {}, host_where)
        _check_keys(entry, _KEYS, host_where)
        hosts[str(host)] = HostConfig(
            **_tls_fields(entry, host_where),
            insecure=bool(_bool(entry.get("insecure"), f"{host_where}.insecure")),
        )
    _refuse_one_host_twice(hosts, where, text)
    insecure = section.get("insecure") or []
    if not isinstance(insecure, list) or not all(isinstance(h, str) for h in insecure):
        raise UsageError(f"{where}.insecure must be a list of host[:port] strings")
    return RegistryConfig(
        **_tls_fields(section, where),
        insecure=tuple(insecure),
        hosts=hosts,
        path=str(path),
    )


def _refuse_one_host_twice(hosts: Mapping[str, HostConfig], where: str, text: str) -> None:
    """Two tables for one registry (``Harbor.example.com`` / ``harbor.example.com``) are an error.

    Host names are case-insensitive and Docker Hub has several; which table applied would
    depend on how an image reference happens to spell the host.
    """
    from imgctl._internal.strict_yaml import normalise_key
    from imgctl.oci.reference import canonical_registry

    seen: dict[str, str] = {}
    for host in hosts:
        folded = normalise_key(canonical_registry(host.strip()))
        if folded in seen:
            first = seen[folded]
            raise UsageError(
                f"{where}.hosts: {host!r}{_header_line(text, host)} is the same registry as"
                f" {first!r}{_header_line(text, first)}",
                hint="keep one table per registry: host names are case-insensitive",
            )
        seen[folded] = host


def _header_line(text: str, host: str) -> str:
    """`` (line N)`` of the first line naming ``host`` as a TOML key, or nothing."""
    import json

    # Basic strings are JSON-compatible for host names; literal strings are written as is.
    spellings = (json.dumps(host), f"'{host}'", f".{host}]", f".{host}.")
    for number, line in enumerate(text.splitlines(), 1):
        if any(spelling in line for spelling in spellings):
            return f" (line {number})"
    return ""


def _tls_fields(section: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The TLS keys a section may set (the top level or one host), validated."""
    return {
        "ca_cert_paths": _paths(section.get("ca_cert_paths"), f"{where}.ca_cert_paths"),
        "client_cert": _path(section.get("client_cert"), f"{where}.client_cert"),
        "client_key": _path(section.get("client_key"), f"{where}.client_key"),
        "verify_certs": _bool(section.get("verify_certs"), f"{where}.verify_certs"),
    }


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def _check_keys(section: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in section if k not in allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown_key(k, allowed) for k in unknown)}",
            hint=f"allowed: {', '.join(sorted(allowed))}",
        )


def _path(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where} must be a file path")
    return os.path.expanduser(value)


def _paths(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise UsageError(f"{where} must be a list of file paths")
    return tuple(p for p in (_path(v, where) for v in value) if p)


def _bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise UsageError(f"{where} must be true or false, not {value!r}")


def resolve_tls(
    config: RegistryConfig,
    *,
    ca_cert_paths: Sequence[str] = (),
    client_cert: str | None = None,
    client_key: str | None = None,
    verify_certs: bool | None = None,
) -> RegistryTLS:
    """Merge flags/env (the arguments) over the config file: the TLS for every registry."""
    if client_key and not client_cert:
        raise UsageError("--registry-client-key needs --registry-client-cert")
    cert, key = (
        (client_cert, client_key) if client_cert else (config.client_cert, config.client_key)
    )
    verify = verify_certs if verify_certs is not None else config.verify_certs
    default = TLSConfig(
        ca_files=tuple(ca_cert_paths) + config.ca_cert_paths,
        client_cert=cert,
        client_key=key,
        verify=True if verify is None else verify,
    )
    hosts: dict[str, TLSConfig] = {}
    for host, entry in config.hosts.items():
        own_cert = entry.client_cert is not None and not client_cert
        host_verify = verify_certs if verify_certs is not None else entry.verify_certs
        hosts[host] = TLSConfig(
            ca_files=default.ca_files + entry.ca_cert_paths,
            client_cert=entry.client_cert if own_cert else default.client_cert,
            client_key=entry.client_key if own_cert else default.client_key,
            verify=default.verify if host_verify is None else host_verify,
        )
    return RegistryTLS(default, hosts)


def insecure_hosts(config: RegistryConfig, flags: Sequence[str] = ()) -> frozenset[str]:
    """Hosts allowed plain HTTP / unverified TLS: flags, the file's list and its hosts."""
    names = {h.strip() for item in flags for h in item.split(",")}
    names.update(config.insecure)
    names.update(host for host, entry in config.hosts.items() if entry.insecure)
    return frozenset(n for n in names if n)
