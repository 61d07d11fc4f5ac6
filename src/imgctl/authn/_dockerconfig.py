"""Credentials from docker's ``config.json`` and podman's ``auth.json``, helpers included.

``DockerConfigKeychain`` reads the files docker, podman and go-containerregistry users already
have, in this order, and the first file with an answer for the registry wins:

1. ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``;
2. ``$REGISTRY_AUTH_FILE``;
3. ``$XDG_RUNTIME_DIR/containers/auth.json``;
4. ``~/.config/containers/auth.json``.

Within a file, ``credHelpers[host]`` names a credential helper, else ``credsStore`` does; a
helper that has no credentials for the host falls back to the file's ``auths``. Helpers speak
the docker-credential-helpers protocol: ``docker-credential-<name> get``, server URL on stdin,
``{"ServerURL", "Username", "Secret"}`` on stdout.

``auths`` keys are normalised the way docker and containers/image do (scheme, ``/v1/`` and
Docker Hub aliases), and podman's repository-scoped keys (``quay.io/org/repo``) match on whole
path segments, most specific first.

No secret ever reaches an exception message, a ``Resolution`` or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgctl._internal.messages import json_kind
from imgctl.authn._keychain import ANONYMOUS, Credential, Resolution, SourceKeychain
from imgctl.errors import CredentialError
from imgctl.oci.reference import DEFAULT_REGISTRY, canonical_registry

__all__ = ["HELPER_TIMEOUT", "DockerConfigKeychain"]

HELPER_TIMEOUT = 30.0
"""Seconds a credential helper may take before it counts as failed."""

# The key docker itself writes for Docker Hub, and the server URL helpers store Hub under.
_DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_HELPER_PREFIX = "docker-credential-"
_IDENTITY_USERNAME = "<token>"  # helpers answer this when Secret is an identity token
_NOT_FOUND_MARKER = "credentials not found"
_MAX_SHOWN_OUTPUT = 200


MAX_CONFIG_BYTES = 4 << 20
"""The largest docker config file read (docker's own are a few kB): a bound, not a limit."""


class UnreadableConfigError(Exception):
    """Why a docker config file cannot be used: ``problem`` follows the file's name."""

    def __init__(self, problem: str, *, content: bool) -> None:
        super().__init__(problem)
        self.problem = problem
        self.content = content  # the file was read, but what it holds is wrong


def read_config_document(path: Path) -> object | None:
    """A docker config file's JSON document: None without a file, {} for an empty one.

    The one reader of the file, for the keychain and for ``imgctl registry login``. Errors
    never quote the file (it holds secrets): a JSON error gives its position only, and the
    exception is raised outside ``except`` so that no traceback carries the contents.
    """
    problem: str | None = None
    content = True
    raw = b""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        problem, content = "is a directory, not a file", False
    except OSError as exc:
        problem, content = f"cannot be read: {exc.strerror or type(exc).__name__}", False
    if problem is None and len(raw) > MAX_CONFIG_BYTES:
        problem = f"is larger than {MAX_CONFIG_BYTES} bytes"
    if problem is not None:
        raise UnreadableConfigError(problem, content=content)
    if not raw.strip():
        return {}  # docker treats an empty file as an empty configuration
    document: object = None
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if problem is not None:
        raise UnreadableConfigError(problem, content=True)
    return document


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A file the keychain may read, and which variable (if any) pointed at it."""

    path: Path
    display: str
    variable: str | None

    def described(self) -> str:
        """The file as error messages name it: with the variable that chose it."""
        if self.variable is None:
            return self.display
        return f"{self.display} (from ${self.variable})"


@dataclass(frozen=True, slots=True)
class _AuthEntry:
    """One ``auths`` entry; secret fields stay out of repr."""

    key: str
    host: str
    path: str  # "" for a host-only key, else the repository prefix it is scoped to
    rank: int  # 0 for the spelling docker/podman write themselves, so it wins over aliases
    auth: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class _HelperRef:
    """Which helper a file asks for, and the setting that asked (for messages)."""

    helper: str
    setting: str  # 'credHelpers["ghcr.io"]' or 'credsStore "desktop"'

    @property
    def program(self) -> str:
        """The executable's name on PATH."""
        return _HELPER_PREFIX + self.helper


@dataclass(frozen=True, slots=True)
class _ConfigFile:
    """A parsed config file."""

    candidate: _Candidate
    entries: tuple[_AuthEntry, ...]
    cred_helpers: Mapping[str, _HelperRef]  # normalised host -> helper
    creds_store: _HelperRef | None


def _quoted(key: str) -> str:
    """A key as it would appear in JSON, for ``auths["..."]`` in messages."""
    return json.dumps(key)


def _normalise_host(host: str) -> str:
    """Lower-case a host and fold Docker Hub's aliases into ``docker.io``."""
    return canonical_registry(host.lower())


def _normalise_key(key: str) -> tuple[str, str]:
    """Split an ``auths``/``credHelpers`` key into normalised host and repository scope.

    A key with a scheme is a legacy URL (``https://index.docker.io/v1/``): only its host
    counts, as in docker and containers/image. A bare key may be podman's repository-scoped
    form (``quay.io/org/repo``).
    """
    stripped = key.strip()
    lowered = stripped.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            host = stripped[len(scheme) :].split("/", 1)[0]
            return _normalise_host(host), ""
    stripped = stripped.rstrip("/")
    host, _, path = stripped.partition("/")
    if path in ("v1", "v2"):
        path = ""
    return _normalise_host(host), path.strip("/")


def _preferred_keys(host: str, path: str) -> frozenset[str]:
    """The spellings docker and podman write for a host/scope; they beat aliases."""
    if path:
        return frozenset({f"{host}/{path}"})
    if host == DEFAULT_REGISTRY:
        return frozenset({_DOCKER_HUB_SERVER_URL, DEFAULT_REGISTRY})
    return frozenset({host})


def _scopes(repository: str) -> list[str]:
    """Repository prefixes on whole segments, longest first, then "" for the host-only key."""
    segments = [s for s in repository.split("/") if s]
    return ["/".join(segments[:n]) for n in range(len(segments), 0, -1)] + [""]


def _server_url(registry: str) -> str:
    """What a credential helper is asked about: Hub's legacy URL, else host[:port]."""
    if _normalise_host(registry) == DEFAULT_REGISTRY:
        return _DOCKER_HUB_SERVER_URL
    return registry


def _first_line(text: bytes) -> str:
    """The first non-blank line of a process's output, shortened."""
    for line in text.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            if len(line) > _MAX_SHOWN_OUTPUT:
                return line[:_MAX_SHOWN_OUTPUT] + "..."
            return line
    return ""


def _safe_output(stdout: bytes, stderr: bytes) -> str:
    """A helper's complaint fit for an error message, or "" when it could carry a secret."""
    # stderr is where helpers complain; stdout is where they put secrets, so it is shown only
    # when it does not look like a credentials answer.
    line = _first_line(stderr)
    if line:
        return line
    if b"secret" in stdout.lower():
        return "(output withheld: it may contain a secret)"
    return _first_line(stdout)


class DockerConfigKeychain(SourceKeychain):
    """Credentials from docker/podman config files and the credential helpers they name."""

    name = "docker-config"

    def __init__(
        self,
        environ: Mapping[str, str],
        home: Path,
        *,
        helper_timeout: float = HELPER_TIMEOUT,
    ) -> None:
        self._environ = dict(environ)
        self._home = home
        self._helper_timeout = helper_timeout
        self._candidates = self._find_candidates()
        self._files: dict[Path, _ConfigFile | None] = {}
        self._helper_answers: dict[tuple[str, str], Credential | None] = {}
        self._helper_locks: dict[tuple[str, str], asyncio.Lock] = {}

    @classmethod
    def from_environment(cls) -> DockerConfigKeychain:
        """A keychain over this process's environment and home directory."""
        return cls(os.environ, Path.home())

    @classmethod
    def for_file(cls, path: Path, environ: Mapping[str, str] | None = None) -> DockerConfigKeychain:
        """A keychain over one config file only (a watch's ``credentials.dockerConfig``)."""
        keychain = cls(environ if environ is not None else os.environ, path.parent)
        keychain._candidates = (_Candidate(path, str(path), None),)
        return keychain

    def __repr__(self) -> str:
        files = ", ".join(c.display for c in self._candidates)
        return f"DockerConfigKeychain({files})"

    @property
    def files(self) -> tuple[Path, ...]:
        """The files consulted, in order (whether or not they exist)."""
        return tuple(c.path for c in self._candidates)

    async def explain(self, registry: str, repository: str) -> Resolution:
        """Find credentials for ``registry``/``repository`` and say which file gave them."""
        host = _normalise_host(registry)
        consulted: list[str] = []
        notes: list[str] = []
        for candidate in self._candidates:
            config = self._load(candidate)
            if config is None:
                continue
            consulted.append(candidate.display)
            answer = await self._explain_in(config, registry, host, repository, notes)
            if answer is not None:
                return answer
        if not consulted:
            looked = ", ".join(c.display for c in self._candidates)
            return Resolution(ANONYMOUS, self.name, f"no docker or podman config file ({looked})")
        detail = f"no entry for {registry} in {', '.join(consulted)}"
        if notes:
            detail += "; " + "; ".join(notes)
        return Resolution(ANONYMOUS, self.name, detail)

    # -- files -----------------------------------------------------------------------------

    def _display(self, path: Path) -> str:
        """A path as messages show it: ``~/...`` under the home directory."""
        try:
            relative = path.relative_to(self._home)
        except ValueError:
            return str(path)
        return f"~/{relative.as_posix()}"

    def _find_candidates(self) -> tuple[_Candidate, ...]:
        """The config files to consult, in order, each once."""
        found: list[tuple[Path, str | None]] = []
        docker_config = self._environ.get("DOCKER_CONFIG")
        if docker_config:
            found.append((Path(docker_config) / "config.json", "DOCKER_CONFIG"))
        else:
            found.append((self._home / ".docker" / "config.json", None))
        auth_file = self._environ.get("REGISTRY_AUTH_FILE")
        if auth_file:
            found.append((Path(auth_file), "REGISTRY_AUTH_FILE"))
        runtime_dir = self._environ.get("XDG_RUNTIME_DIR")
        if runtime_dir:
            found.append((Path(runtime_dir) / "containers" / "auth.json", "XDG_RUNTIME_DIR"))
        found.append((self._home / ".config" / "containers" / "auth.json", None))

        candidates: list[_Candidate] = []
        seen: set[Path] = set()
        for path, variable in found:
            key = Path(os.path.normpath(path))
            if key in seen:
                continue
            seen.add(key)
            candidates.append(_Candidate(path, self._display(path), variable))
        return tuple(candidates)

    def _load(self, candidate: _Candidate) -> _ConfigFile | None:
        """Parse a file on first use; None when it does not exist."""
        if candidate.path in self._files:
            return self._files[candidate.path]
        config = self._read(candidate)
        self._files[candidate.path] = config
        return config

    def _read(self, candidate: _Candidate) -> _ConfigFile | None:
        """Read and validate one file; None when it does not exist."""
        unreadable: UnreadableConfigError | None = None
        try:
            document = read_config_document(candidate.path)
        except UnreadableConfigError as exc:
            unreadable = exc
        if unreadable is not None:  # raised here, with no exception chained to it
            hint = "fix the file or remove it to use no credentials" if unreadable.content else None
            raise CredentialError(f"{candidate.described()} {unreadable.problem}", hint=hint)
        return None if document is None else self._parse(candidate, document)

    def _parse(self, candidate: _Candidate, document: object) -> _ConfigFile:
        """Check a parsed file's shape and index its entries."""
        where = candidate.described()

        def wrong(what: str, expected: str, value: object) -> CredentialError:
            return CredentialError(
                f"{where}: {what} must be {expected}, not {json_kind(value, article=False)}",
                hint="fix the file or remove it to use no credentials",
            )

        if not isinstance(document, dict):
            raise wrong("the top level", "an object", document)

        auths: Any = document.get("auths")
        if auths is None:
            auths = {}
        if not isinstance(auths, dict):
            raise wrong("auths", "an object", auths)
        entries: list[_AuthEntry] = []
        for key, value in auths.items():
            if value is None:
                continue
            if not isinstance(value, dict):
                raise wrong(f"auths[{_quoted(key)}]", "an object", value)
            fields: dict[str, str | None] = {}
            for name in ("auth", "username", "password", "identitytoken", "registrytoken"):
                item = value.get(name)
                if item is not None and not isinstance(item, str):
                    raise wrong(f"auths[{_quoted(key)}].{name}", "a string", item)
                fields[name] = item or None
            host, path = _normalise_key(key)
            if not host:
                continue
            entries.append(
                _AuthEntry(
                    key=key,
                    host=host,
                    path=path,
                    rank=0 if key.strip() in _preferred_keys(host, path) else 1,
                    auth=fields["auth"],
                    username=fields["username"],
                    password=fields["password"],
                    identity_token=fields["identitytoken"],
                    registry_token=fields["registrytoken"],
                )
            )

        helpers_value: Any = document.get("credHelpers")
        if helpers_value is None:
            helpers_value = {}
        if not isinstance(helpers_value, dict):
            raise wrong("credHelpers", "an object", helpers_value)
        cred_helpers: dict[str, _HelperRef] = {}
        for key, helper in helpers_value.items():
            setting = f"credHelpers[{_quoted(key)}]"
            if helper is None or helper == "":
                continue
            if not isinstance(helper, str):
                raise wrong(setting, "a string", helper)
            self._check_helper_name(where, setting, helper)
            host, path = _normalise_key(key)
            # Helpers are per host; a scoped key is not something docker or podman write.
            if host and not path:
                cred_helpers.setdefault(host, _HelperRef(helper, setting))

        store: Any = document.get("credsStore")
        creds_store: _HelperRef | None = None
        if store is not None and not isinstance(store, str):
            raise wrong("credsStore", "a string", store)
        if store:
            setting = f"credsStore {_quoted(store)}"
            self._check_helper_name(where, setting, store)
            creds_store = _HelperRef(store, setting)

        # Most specific scope first; within a scope, the canonical spelling, then file order.
        ordered = sorted(entries, key=lambda e: e.rank)
        return _ConfigFile(candidate, tuple(ordered), cred_helpers, creds_store)

    @staticmethod
    def _check_helper_name(where: str, setting: str, helper: str) -> None:
        """Refuse helper names that would make ``docker-credential-<name>`` a path."""
        if "/" in helper or "\\" in helper or any(c.isspace() for c in helper):
            raise CredentialError(
                f"{where}: {setting} is not a credential helper name",
                hint='name the helper without path or spaces, e.g. "desktop" for '
                "docker-credential-desktop",
            )

    # -- lookup ----------------------------------------------------------------------------

    async def _explain_in(
        self,
        config: _ConfigFile,
        registry: str,
        host: str,
        repository: str,
        notes: list[str],
    ) -> Resolution | None:
        """One file's answer, or None so the next file is consulted."""
        display = config.candidate.display
        helper = config.cred_helpers.get(host) or config.creds_store
        helper_note: str | None = None
        if helper is not None:
            credential = await self._ask_helper(config, helper, registry)
            source = f"{display} {helper.setting} -> {helper.program}"
            if credential is not None:
                return Resolution(credential, self.name, source)
            helper_note = f"{source} has no credentials for {registry}"

        match = self._match_auths(config, host, repository)
        if match is not None:
            entry, credential = match
            detail = f"{display} auths[{_quoted(entry.key)}]"
            if helper_note is not None:
                detail += f" ({helper_note})"
            return Resolution(credential, self.name, detail)
        if helper_note is not None:
            notes.append(helper_note)
        return None

    def _match_auths(
        self, config: _ConfigFile, host: str, repository: str
    ) -> tuple[_AuthEntry, Credential] | None:
        """The most specific usable ``auths`` entry for the repository."""
        for scope in _scopes(repository):
            for entry in config.entries:
                if entry.host != host or entry.path != scope:
                    continue
                credential = self._entry_credential(config, entry)
                if not credential.anonymous:
                    return entry, credential
        return None

    @staticmethod
    def _entry_credential(config: _ConfigFile, entry: _AuthEntry) -> Credential:
        """Turn an ``auths`` entry into a credential (anonymous when it holds nothing)."""
        username, password = entry.username, entry.password
        if entry.auth is not None:
            problem: str | None = None
            decoded = ""
            try:
                padded = entry.auth.strip() + "=" * (-len(entry.auth.strip()) % 4)
                decoded = base64.b64decode(padded, validate=True).decode("utf-8")
            except binascii.Error:
                problem = "is not valid base64"
            except UnicodeDecodeError:
                problem = "does not decode to UTF-8 text"
            if problem is None and ":" not in decoded:
                problem = "does not decode to username:password"
            if problem is not None:
                # Raised outside the except blocks so no exception context holds the value.
                raise CredentialError(
                    f"{config.candidate.described()}: auths[{_quoted(entry.key)}].auth {problem}",
                    hint="log in again (docker login / podman login) to rewrite the entry",
                )
            username, _, password = decoded.partition(":")
        return Credential(
            username=username or None,
            password=password or None,
            identity_token=entry.identity_token,
            registry_token=entry.registry_token,
        )

    # -- credential helpers -----------------------------------------------------------------

    async def _ask_helper(
        self, config: _ConfigFile, helper: _HelperRef, registry: str
    ) -> Credential | None:
        """The helper's credential for the registry (cached), or None when it has none."""
        server_url = _server_url(registry)
        key = (helper.helper, server_url)
        if key in self._helper_answers:
            return self._helper_answers[key]
        lock = self._helper_locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Another task may have asked while this one waited for the lock.
            if key in self._helper_answers:
                return self._helper_answers[key]
            answer = await self._run_helper(config, helper, server_url)
            self._helper_answers[key] = answer
            return answer

    async def _run_helper(
        self, config: _ConfigFile, helper: _HelperRef, server_url: str
    ) -> Credential | None:
        """Run ``docker-credential-<name> get`` with the server URL on stdin."""
        where = config.candidate.described()
        asked_by = f"{helper.setting} in {where}"
        executable = shutil.which(helper.program, path=self._environ.get("PATH"))
        if executable is None:
            raise CredentialError(
                f"credential helper {helper.program} not found on PATH ({asked_by})",
                hint=f"install {helper.program} or remove {helper.setting} from "
                f"{config.candidate.display}",
            )

        failure: str | None = None
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                "get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            failure = f"could not be started: {exc.strerror or type(exc).__name__}"
        if failure is not None:
            raise CredentialError(f"credential helper {helper.program} {failure} ({asked_by})")

        stdout = stderr = b""
        try:
            async with asyncio.timeout(self._helper_timeout):
                stdout, stderr = await process.communicate(server_url.encode())
        except TimeoutError:
            failure = f"did not answer within {self._helper_timeout:g} s"
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if failure is not None:
            raise CredentialError(
                f"credential helper {helper.program} {failure} for {server_url} ({asked_by})"
            )

        if process.returncode != 0:
            if _NOT_FOUND_MARKER in (stdout + stderr).decode("utf-8", "replace").lower():
                return None
            said = _safe_output(stdout, stderr)
            message = (
                f"credential helper {helper.program} failed for {server_url} "
                f"(exit status {process.returncode}; {asked_by})"
            )
            if said:
                message += f": {said}"
            raise CredentialError(message)

        return self._parse_helper_answer(stdout, stderr, helper, server_url, asked_by)

    @staticmethod
    def _parse_helper_answer(
        stdout: bytes, stderr: bytes, helper: _HelperRef, server_url: str, asked_by: str
    ) -> Credential | None:
        """Read ``{"Username", "Secret"}``; the output is never quoted back, it holds the secret."""
        document: object = None
        problem: str | None = None
        try:
            document = json.loads(stdout)
        except ValueError:
            problem = "printed something that is not JSON"
        if problem is None:
            if not isinstance(document, dict):
                problem = f"printed a JSON {json_kind(document, article=False)}, not an object"
            else:
                for name in ("Username", "Secret"):
                    value = document.get(name)
                    if value is not None and not isinstance(value, str):
                        problem = f"printed {name} as {json_kind(value)}, not a string"
                        break
        if problem is not None:
            message = f"credential helper {helper.program} {problem} for {server_url} ({asked_by})"
            complaint = _first_line(stderr)
            if complaint:
                message += f": {complaint}"
            raise CredentialError(message)

        assert isinstance(document, dict)
        username = document.get("Username") or ""
        secret = document.get("Secret") or ""
        if not username and not secret:
            return None
        if username == _IDENTITY_USERNAME:
            return Credential(identity_token=secret or None)
        return Credential(username=username or None, password=secret or None)
