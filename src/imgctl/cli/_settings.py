"""Client settings: flag or env (Typer), then ``[client]`` in config.toml, then baked defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgctl._defaults import BUILD_KEYS
from imgctl.errors import UsageError

# Keys of the config file's [client] table: what can be baked in, plus the TLS files.
CLIENT_KEYS = frozenset(BUILD_KEYS) | {"ca_cert", "client_cert", "client_key"}


# One command resolves a dozen settings; the file is read and checked once per version of it.
_CACHE: dict[tuple[Path, int, int], dict[str, Any]] = {}


def user_config() -> dict[str, Any]:
    """The ``[client]`` table of ``~/.config/imgctl/config.toml`` (empty when absent)."""
    import os

    from imgctl.remote.config import default_config_path

    path = default_config_path(os.environ, Path.home())
    try:
        stat = path.stat()
    except OSError:
        return {}
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _read_client_table(path)
    return _CACHE[key]


def _read_client_table(path: Path) -> dict[str, Any]:
    from imgctl._internal.messages import unknown_key
    from imgctl.remote.config import load_config_document

    document = load_config_document(path)
    client = document.get("client", {})
    if not isinstance(client, dict):
        raise UsageError(f"{path}: client must be a table ([client])")
    unknown = sorted(set(client) - CLIENT_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(unknown_key(k, CLIENT_KEYS) for k in unknown)}"
            " in [client]",
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
