"""The built-in issuer's config file: Dex's SSH connector config, plus clients and the issuer.

Two shapes are read, so a file ports both ways:

* flat — the SSH connector's ``config`` block at the top level, next to ``issuer`` and
  ``staticClients``;
* Dex's own — ``issuer``, ``staticClients`` and
  ``connectors: [{type: ssh, id: ssh, config: {...}}]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from imgctl._internal import strict_yaml
from imgctl._internal.messages import unknown_key, yaml_kind
from imgctl.errors import ImgctlError, UsageError

__all__ = ["IssuerConfig", "SSHUser", "StaticClient", "load_issuer_config"]

_CONNECTOR_KEYS = frozenset(
    {"users", "allowed_issuers", "dex_instance_id", "allowed_target_audiences", "default_groups"}
)
_OWN_KEYS = frozenset(
    {"issuer", "staticClients", "keys_dir", "token_ttl", "clock_skew", "database_url"}
)
_DEX_ONLY_KEYS = frozenset(
    {"storage", "web", "telemetry", "grpc", "expiry", "logger", "oauth2", "enablePasswordDB"}
)
_USER_KEYS = frozenset({"keys", "username", "email", "groups", "name"})
_CONNECTOR_ENTRY_KEYS = frozenset({"type", "id", "name", "config"})
_CLIENT_KEYS = frozenset({"id", "secret", "name", "redirectURIs", "public", "trustedPeers"})


@dataclass(frozen=True, slots=True)
class SSHUser:
    """A user of the SSH connector: who they are and the keys that prove it."""

    username: str
    keys: tuple[str, ...]  # authorized_keys lines
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticClient:
    """An OAuth2 client allowed to call the token endpoint."""

    id: str
    secret: str | None = None
    name: str | None = None

    def __repr__(self) -> str:
        # The secret stays out of reprs, logs and tracebacks.
        return f"StaticClient(id={self.id!r}, name={self.name!r})"


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """Everything ``imgctl idp serve`` needs besides the address."""

    users: Mapping[str, SSHUser]
    clients: Mapping[str, StaticClient]
    keys_dir: Path
    issuer: str | None = None
    allowed_issuers: tuple[str, ...] = ()
    dex_instance_id: str | None = None
    allowed_target_audiences: tuple[str, ...] = ()
    default_groups: tuple[str, ...] = ()
    token_ttl: int = 3600
    clock_skew: int = 30
    connector_id: str = "ssh"
    path: Path | None = field(default=None, compare=False)
    # Where used SSH-JWT ids are kept: a database URL, "memory", or None (IMGCTL_DATABASE_URL,
    # else a SQLite file in keys_dir). May hold a password: never logged as it is.
    database_url: str | None = field(default=None, repr=False)


def load_issuer_config(path: Path) -> IssuerConfig:
    """Read and check an issuer config file; every mistake names the file and the key."""
    # Strict YAML: a key written twice, in any spelling or through a merge, is refused.
    loaded = strict_yaml.load_file(path, "issuer config")
    top = _mapping(loaded.data, f"{path}")
    connector_id = "ssh"
    if "connectors" in top:
        connector, connector_id = _ssh_connector(top["connectors"], f"{path}: connectors", loaded)
        unknown = set(top) - _OWN_KEYS - _DEX_ONLY_KEYS - {"connectors"}
        _refuse_unknown(unknown, f"{path}", _OWN_KEYS | {"connectors"}, (loaded, top))
        connector_data: object = connector
    else:
        connector = {k: v for k, v in top.items() if k in _CONNECTOR_KEYS}
        connector_data = top
        _refuse_unknown(
            set(top) - _OWN_KEYS - _CONNECTOR_KEYS,
            f"{path}",
            _OWN_KEYS | _CONNECTOR_KEYS,
            (loaded, top),
        )
    where = f"{path}"
    _refuse_unknown(
        set(connector) - _CONNECTOR_KEYS,
        f"{where}: connector config",
        _CONNECTOR_KEYS,
        (loaded, connector_data),
    )

    users: dict[str, SSHUser] = {}
    # Folded username -> where it was defined: two users with one name would leave the
    # login to whichever came last.
    defined: dict[str, str] = {}
    for key, raw in _mapping(connector.get("users") or {}, f"{where}: users").items():
        user_where = f"{where}: users.{key}"
        entry = _mapping(raw or {}, user_where)
        _refuse_unknown(set(entry) - _USER_KEYS, user_where, _USER_KEYS, (loaded, entry))
        username = _string(entry.get("username"), f"{user_where}.username") or str(key)
        folded = strict_yaml.normalise_key(username)
        if folded in defined:
            raise UsageError(
                f"{user_where}{loaded.at(entry)} is user {username!r} again: {defined[folded]}"
                " already is",
                hint="give each user one entry (usernames differing only in case are one user)",
            )
        defined[folded] = f"users.{key}{loaded.at(entry)}"
        keys = _strings(entry.get("keys"), f"{user_where}.keys")
        if not keys:
            raise UsageError(f"{user_where} has no keys", hint="list authorized_keys lines")
        for number, line in enumerate(keys):
            _check_key(line, f"{user_where}.keys[{number}]")
        users[username] = SSHUser(
            username=username,
            keys=keys,
            email=_string(entry.get("email"), f"{user_where}.email"),
            name=_string(entry.get("name"), f"{user_where}.name"),
            groups=_strings(entry.get("groups"), f"{user_where}.groups"),
        )
    if not users:
        raise UsageError(f"{where} lists no users", hint="add users: {name: {keys: [...]}}")

    clients: dict[str, StaticClient] = {}
    raw_clients = top.get("staticClients") or []
    if not isinstance(raw_clients, list):
        raise UsageError(f"{where}: staticClients must be a list of {{id, secret, name}}")
    for number, raw in enumerate(raw_clients):
        client_where = f"{where}: staticClients[{number}]{loaded.at(raw)}"
        entry = _mapping(raw, client_where)
        _refuse_unknown(set(entry) - _CLIENT_KEYS, client_where, _CLIENT_KEYS, (loaded, entry))
        client_id = _string(entry.get("id"), f"{client_where}.id")
        if not client_id:
            raise UsageError(f"{client_where} has no id")
        if client_id in clients:
            first = next(i for i, c in enumerate(raw_clients) if c.get("id") == client_id)
            raise UsageError(
                f"{client_where}: client id {client_id!r} is already used by"
                f" staticClients[{first}]{loaded.at(raw_clients[first])}",
                hint="give each client one entry",
            )
        # Read by Dex, not by imgctl; still typed, so that a file that works here works there.
        if entry.get("public") is not None and not isinstance(entry["public"], bool):
            raise UsageError(f"{client_where}.public must be true or false")
        for listed in ("redirectURIs", "trustedPeers"):
            _strings(entry.get(listed), f"{client_where}.{listed}")
        clients[client_id] = StaticClient(
            client_id,
            _string(entry.get("secret"), f"{client_where}.secret"),
            _string(entry.get("name"), f"{client_where}.name"),
        )
    if not clients:
        raise UsageError(
            f"{where} lists no staticClients",
            hint="add staticClients: [{id: imgctl, secret: ..., name: imgctl}]",
        )

    raw_dir = _string(top.get("keys_dir"), f"{where}: keys_dir")
    keys_dir = Path(raw_dir).expanduser() if raw_dir else Path("idp-keys")
    if not keys_dir.is_absolute():  # relative to the config file, like Dex's paths
        keys_dir = (path.parent / keys_dir).resolve()
    return IssuerConfig(
        users=users,
        clients=clients,
        keys_dir=keys_dir,
        issuer=_string(top.get("issuer"), f"{where}: issuer"),
        allowed_issuers=_strings(connector.get("allowed_issuers"), f"{where}: allowed_issuers"),
        dex_instance_id=_string(connector.get("dex_instance_id"), f"{where}: dex_instance_id"),
        allowed_target_audiences=_strings(
            connector.get("allowed_target_audiences"), f"{where}: allowed_target_audiences"
        ),
        default_groups=_strings(connector.get("default_groups"), f"{where}: default_groups"),
        token_ttl=_seconds(top.get("token_ttl"), f"{where}: token_ttl", 3600),
        clock_skew=_seconds(top.get("clock_skew"), f"{where}: clock_skew", 30, zero_ok=True),
        connector_id=connector_id,
        path=path,
        database_url=_database_url(top.get("database_url"), f"{where}: database_url", path),
    )


def _database_url(value: Any, where: str, path: Path) -> str | None:
    """A database URL, pinned to its driver, or "memory"; a relative SQLite file is the config's."""
    from sqlalchemy.engine import make_url

    from imgctl.store import normalise_url, redact_url

    raw = _string(value, where)
    if raw is None or raw == "memory":
        return raw
    try:
        url = normalise_url(raw)
    except UsageError:
        raise UsageError(
            f"{where} {redact_url(raw)!r} is not a PostgreSQL URL or a SQLite file URL",
            hint="give postgresql://USER:PASSWORD@HOST:5432/DBNAME, "
            "sqlite:////absolute/path/issuer.db, or memory (one process, forgets on restart)",
        ) from None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        database = Path(parsed.database).expanduser()
        if not database.is_absolute():  # relative to the config file, like keys_dir
            url = parsed.set(database=str((path.parent / database).resolve())).render_as_string(
                hide_password=False
            )
    return url


def _check_key(line: str, where: str) -> None:
    """Refuse a key line no login could ever match, at start rather than at the first login."""
    from imgctl.identity.sshjwt import SUPPORTED_KEY_TYPES, parse_authorized_key

    try:
        key_type, _, _ = parse_authorized_key(line)
    except ImgctlError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if key_type not in SUPPORTED_KEY_TYPES:
        raise UsageError(
            f"{where}: {key_type} keys cannot sign an SSH JWT here",
            hint=f"use one of {', '.join(sorted(SUPPORTED_KEY_TYPES))}",
        )


def _ssh_connector(
    value: Any, where: str, loaded: strict_yaml.Document
) -> tuple[Mapping[str, Any], str]:
    if not isinstance(value, list):
        raise UsageError(f"{where} must be a list")
    for number, connector in enumerate(value):
        at = f"{where}[{number}]{loaded.at(connector)}"
        _refuse_unknown(
            set(_mapping(connector, at)) - _CONNECTOR_ENTRY_KEYS,
            at,
            _CONNECTOR_ENTRY_KEYS,
            (loaded, connector),
        )
    found = [c for c in value if c.get("type") == "ssh"]
    if len(found) != 1:
        raise UsageError(
            f"{where} must hold exactly one connector of type ssh (found {len(found)})"
        )
    connector_id = _string(found[0].get("id"), f"{where}[ssh].id") or "ssh"
    return _mapping(found[0].get("config") or {}, f"{where}[ssh].config"), connector_id


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def _refuse_unknown(
    unknown: set[Any],
    where: str,
    allowed: frozenset[str],
    within: tuple[strict_yaml.Document, object] | None = None,
) -> None:
    """UsageError listing ``unknown`` keys, each with its line when ``within`` says where."""
    if unknown:
        located = [
            unknown_key(key, allowed, f"{key}{within[0].key_at(within[1], key) if within else ''}")
            for key in sorted(map(str, unknown))
        ]
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(located)}",
            hint=f"allowed: {', '.join(sorted(allowed))}",
        )


def _string(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        # YAML reads 123, 1e3, yes and 2024-01-01 as other things than strings; never echo the
        # value (a secret is one of these).
        scalar = isinstance(value, int | float | bool | date)
        raise UsageError(
            f"{where} must be a string, not {yaml_kind(value)}",
            hint="put it in quotes in the YAML, so that it is read as a string" if scalar else None,
        )
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where} must be a list of strings")
    return tuple(value)


def _seconds(value: Any, where: str, default: int, *, zero_ok: bool = False) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        raise UsageError(f"{where} must be a whole number of seconds")
    return value
