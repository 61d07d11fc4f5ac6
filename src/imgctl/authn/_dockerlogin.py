"""Writing registry logins into docker's ``config.json``: ``imgctl registry login``/``logout``.

The file is the one ``DockerConfigKeychain`` reads first (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``) and the one docker, crane, skopeo and helm read too. A login sets
``auths.<registry>.auth`` to base64(user:password), as ``docker login`` does without a
credential store; a logout removes that entry (and the aliases docker accepts for it). Every
other key of the file is kept as it was, in its order. The file is written whole to a new file
(mode 0600) in the same directory and renamed over the old one, so a reader never sees half of
it; a file that is not a JSON object is refused, never overwritten.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgctl._internal.messages import json_kind
from imgctl.authn._dockerconfig import (
    _DOCKER_HUB_SERVER_URL,
    UnreadableConfigError,
    _normalise_key,
    read_config_document,
)
from imgctl.errors import UsageError
from imgctl.oci.reference import DEFAULT_REGISTRY, canonical_registry

__all__ = ["DockerLogin", "docker_config_path", "login_key"]


def docker_config_path(environ: Mapping[str, str], home: Path) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (docker's choice)."""
    directory = environ.get("DOCKER_CONFIG")
    return (Path(directory) if directory else home / ".docker") / "config.json"


def login_key(registry: str) -> str:
    """The ``auths`` key docker writes for ``registry``: Hub's legacy URL, else host[:port]."""
    host = canonical_registry(registry.lower())
    return _DOCKER_HUB_SERVER_URL if host == DEFAULT_REGISTRY else host


@dataclass(frozen=True, slots=True)
class DockerLogin:
    """One docker config file, read and written as ``docker login``/``logout`` do."""

    path: Path

    def load(self) -> dict[str, Any]:
        """The file's object (empty when there is no file); anything but a JSON object fails."""
        problem: str | None = None
        document: object = None
        unreadable = False
        try:
            document = read_config_document(self.path)
        except UnreadableConfigError as exc:
            problem, unreadable = exc.problem, not exc.content
        if unreadable:  # raised here, with no exception chained to it
            raise UsageError(f"{self.path} {problem}")
        if document is None and problem is None:
            return {}
        if problem is None and not isinstance(document, dict):
            problem = f"holds {json_kind(document)}, not a JSON object"
        if isinstance(document, dict) and not isinstance(document.get("auths", {}), dict):
            problem = "has an 'auths' that is not an object"
        if problem is not None:
            raise UsageError(
                f"{self.path} {problem}; refusing to overwrite it",
                hint="fix the file (or move it away) and log in again",
            )
        assert isinstance(document, dict)
        return document

    def helper_for(self, registry: str) -> str | None:
        """The credential helper the file names for ``registry`` (its answer wins over auths)."""
        document = self.load()
        helpers = document.get("credHelpers")
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if _normalise_key(key) == _normalise_key(login_key(registry)) and helper:
                    return str(helper)
        store = document.get("credsStore")
        return str(store) if isinstance(store, str) and store else None

    def login(self, registry: str, username: str, password: str) -> None:
        """Set ``auths.<registry>.auth`` to base64(username:password), keeping the rest."""
        document = self.load()
        auths: dict[str, Any] = document.setdefault("auths", {})
        key = login_key(registry)
        for alias in self._aliases(auths, registry):
            if alias != key:
                del auths[alias]  # one entry per registry: an old alias would shadow nothing
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        auths[key] = {"auth": token}
        self._write(document)

    def logout(self, registry: str) -> bool:
        """Remove the registry's ``auths`` entries; False when there was none."""
        document = self.load()
        auths = document.get("auths") or {}
        aliases = self._aliases(auths, registry)
        if not aliases:
            return False
        for alias in aliases:
            del auths[alias]
        self._write(document)
        return True

    @staticmethod
    def _aliases(auths: Mapping[str, Any], registry: str) -> list[str]:
        """The keys naming ``registry`` itself (not a repository under it), as the keychain does."""
        wanted = _normalise_key(login_key(registry))
        return [key for key in auths if _normalise_key(key) == wanted]

    def _write(self, document: Mapping[str, Any]) -> None:
        """Write the file whole, 0600, through a new file renamed over the old one."""
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = (json.dumps(document, indent="\t") + "\n").encode()
        descriptor, temporary = tempfile.mkstemp(prefix=".config.json.", dir=directory)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
