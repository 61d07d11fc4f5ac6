"""Client settings: flag or env (Typer), then ``[client]`` in config.toml, then baked defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgctl._defaults import BUILD_KEYS
from imgctl.errors import UsageError

# Keys of the config file's [client] table: what can be baked in, plus the TLS files.
CLIENT_KEYS = frozenset(BUILD_KEYS) | {"ca_cert", "client_cert", "client_key"}


def user_config() -> dict[str, Any]:
    """The ``[client]`` table of ``~/.config/imgctl/config.toml`` (empty when absent)."""
    import os

    from imgctl.registry.config import default_config_path, load_config_document

    path = default_config_path(os.environ, Path.home())
    document = load_config_document(path)
    client = document.get("client", {})
    if not isinstance(client, dict):
        raise UsageError(f"{path}: client must be a table ([client])")
    unknown = sorted(set(client) - CLIENT_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [client]",
            hint=f"allowed: {', '.join(sorted(CLIENT_KEYS))}",
        )
    for key, value in client.items():
        if not isinstance(value, bool if key == "tls" else str):
            kind = "true or false" if key == "tls" else "a string"
            raise UsageError(f"{path}: [client] {key} must be {kind}")
    return client


def resolve(value: Any, key: str, fallback: Any = None) -> Any:
    """``value`` (flag or env) if given, else the user config's ``key``, else the baked default."""
    if value is not None:
        return value
    config = user_config()
    if config.get(key) is not None:
        return config[key]
    from imgctl._defaults import build_default

    baked = build_default(key)
    return baked if baked is not None else fallback
