"""``imgctl demo``: the whole product, started on loopback ports and used once, step by step.

Two embedded registries (dev, prod), the built-in issuer, a private ssh-agent holding a fresh
key (or the key file when there is no agent), and ``imgctl server`` with SQLite all run as child
processes under one work directory. The demo pushes two images to dev, then runs the real
client (``imgctl auth-check``, ``imgctl promote``) and shows what every part recorded.

Nothing outside the work directory is touched: every child gets a ``HOME`` inside it, the
user's ``SSH_AUTH_SOCK``, docker config and XDG directories are never passed on, and the client
settings are given as environment variables so that a wheel's baked-in defaults cannot send the
demo to a real server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgctl.cli._demo_image import DemoImage
    from imgctl.remote import ClientOptions
    from imgctl.store import AuditRecord

__all__ = ["run"]

GROUP = "release-managers"
AUDIENCE = "imgctl-demo"
CLIENT_ID = "imgctl"
HELLO = ("demo/hello", "1.0.0")
UNVETTED = ("demo/unvetted", "0.1.0")
START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 60.0
# terminate, then kill: the server gets a 1 s grace period, everything else stops at once.
STOP_TIMEOUT = 5.0
# sun_path is 108 bytes on Linux and 104 on macOS; stay under both.
MAX_SOCKET_PATH = 100
_START = "1 (start the registries, issuer, ssh-agent and server)"
_USER_RE = re.compile(r"[a-z_][a-z0-9._-]{0,31}")


class _StepFailed(Exception):
    """A step of the story went wrong: which step, why, and the log that says more."""

    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.log = log


@dataclass
class _Child:
    """A process the demo started, with the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


class _Signals:
    """SIGINT and SIGTERM become KeyboardInterrupt, except inside ``deferred()`` blocks.

    Starting a child and registering it for cleanup is one deferred block, so an interrupt can
    never leave a process that cleanup does not know about.
    """

    def __init__(self) -> None:
        self.code: int | None = None
        self._depth = 0
        self._pending = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only: Python delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """Cleanup is running: further Ctrl-C presses must not cut it short."""
        for signum in self._previous:
            signal.signal(signum, signal.SIG_IGN)

    def restore(self) -> None:
        """Give the signals back to whoever had them."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.code is None:
            self.code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold interrupts until the block ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending:
                self._pending = False
                raise KeyboardInterrupt


def _say(text: str = "") -> None:
    print(text, flush=True)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all sockets held open together, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _user_name() -> str:
    """The current user as an issuer user name, or ``demo`` when it cannot be one."""
    import getpass

    try:
        name = getpass.getuser().strip().lower()
    except Exception:  # getpass raises OSError, KeyError... when there is no user entry
        return "demo"
    return name if _USER_RE.fullmatch(name) else "demo"


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start, never briefly readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@dataclass
class _Demo:
    """Everything the demo started, and what it learned on the way."""

    root: Path
    owns_root: bool
    signals: _Signals
    children: list[_Child] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    user: str = "demo"
    agent_socket: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    catalog_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    # -- paths and addresses ------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The HOME of every child."""
        return self.root / "home"

    @property
    def catalog_tokens(self) -> Path:
        """The server's tokens file for catalog writes (mode 0600)."""
        return self.root / "catalog-tokens.yaml"

    @property
    def logs(self) -> Path:
        """Where each child's output goes."""
        return self.root / "logs"

    @property
    def key_file(self) -> Path:
        """The fresh private key (where ``imgctl`` looks by default, under the demo's HOME)."""
        return self.home / ".ssh" / "id_ed25519"

    @property
    def database(self) -> Path:
        """The server's SQLite file."""
        return self.root / "state" / "imgctl.db"

    def address(self, name: str) -> str:
        """``127.0.0.1:PORT`` of a service."""
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def issuer_url(self) -> str:
        """The issuer's URL (its default: ``http://ADDRESS``)."""
        return f"http://{self.address('idp')}"

    @property
    def http_url(self) -> str:
        """The server's HTTP side."""
        return f"http://{self.address('http')}"

    @property
    def email(self) -> str:
        """The demo user's e-mail at the issuer."""
        return f"{self.user}@demo.imgctl.local"

    # -- environments -------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        """A clean environment: nothing of the user's except the locale and PATH."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        env.setdefault("PATH", os.defpath)
        return env | {"HOME": str(self.home), "USER": self.user, "PYTHONUNBUFFERED": "1"}

    def client_env(self) -> dict[str, str]:
        """What ``imgctl promote`` and ``auth-check`` need; env beats baked-in defaults."""
        env = self.base_env() | {
            "IMGCTL_SERVER": self.address("grpc"),
            "IMGCTL_TLS": "false",
            "DEX_URL": self.issuer_url,
            "IMGCTL_CLIENT_ID": CLIENT_ID,
            "IMGCTL_CLIENT_SECRET": self.secret,
            "IMGCTL_AUDIENCE": AUDIENCE,
            "KUBECTL_SSH_USER": self.user,
        }
        if self.agent_socket:
            env["SSH_AUTH_SOCK"] = self.agent_socket
        return env

    def server_env(self) -> dict[str, str]:
        """``imgctl server``'s configuration."""
        return self.base_env() | {
            "OIDC_ISSUER_URL": self.issuer_url,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_ALLOWED_GROUPS": GROUP,
            "IMGCTL_REGISTRY_DEV": self.address("dev"),
            "IMGCTL_REGISTRY_PROD": self.address("prod"),
            "IMGCTL_DEFAULT_SOURCE": "dev",
            "IMGCTL_DATABASE_URL": f"sqlite:///{self.database}",
            "IMGCTL_STATE_DIR": str(self.database.parent),
            "IMGCTL_ENABLE_IAAS_AUTH": "false",
        }

    # -- children -----------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        """Start a child in its own session and register it for cleanup in the same breath."""
        log = self.logs / f"{name}.log"
        with self.signals.deferred():
            handle = log.open("ab")
            try:
                # Own session: Ctrl-C in the terminal reaches the demo only, and the demo
                # stops the children in order (killpg also reaches anything they started).
                process = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    start_new_session=True,
                )
            except BaseException:
                handle.close()
                raise
            child = _Child(name, process, log, handle)
            self.children.append(child)
        return child

    def imgctl(self, name: str, *args: str) -> _Child:
        """Start ``imgctl ARGS`` with this interpreter (no console script needed on PATH)."""
        return self.spawn(name, [sys.executable, "-m", "imgctl", *args], self.base_env())

    def stop(self) -> None:
        """Terminate every child (whole process group), wait, kill what is left."""
        for child in self.children:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in self.children:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
            child.handle.close()

    def keep_logs(self) -> Path:
        """Copy the logs out of the work directory before it is removed; return where."""
        if not self.owns_root:
            return self.logs
        kept = Path(tempfile.mkdtemp(prefix="imgctl-demo-logs-"))
        for log in self.logs.glob("*.log"):
            shutil.copy2(log, kept / log.name)
        return kept

    def remove(self) -> None:
        """Remove the work directory (if the demo made it) and any scratch directory."""
        for path in [*self.scratch, *([self.root] if self.owns_root else [])]:
            shutil.rmtree(path, ignore_errors=True)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a child's process group, only while the child is unreaped (its pid is ours)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


# -- the steps ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _step(label: str, log: Path | None = None) -> Iterator[None]:
    """Turn any error inside into a _StepFailed naming ``label``."""
    try:
        yield
    except (_StepFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise _StepFailed(label, str(exc) or type(exc).__name__, log) from exc


@dataclass(frozen=True)
class _Key:
    """The demo user's fresh key: its ``authorized_keys`` line and raw halves."""

    line: str
    seed: bytes = field(repr=False)
    public: bytes


def _make_key(demo: _Demo) -> _Key:
    """Generate an ed25519 key into the demo's HOME (OpenSSH format, 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    ssh_dir = demo.key_file.parent
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(
        demo.key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode('ascii')} {demo.user}@imgctl-demo"
    demo.key_file.with_name("id_ed25519.pub").write_text(line + "\n")
    raw = serialization.Encoding.Raw
    return _Key(
        line,
        key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        key.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
    )


def _write_configs(demo: _Demo, key_line: str) -> tuple[Path, Path]:
    """The issuer's config (users, client secret) and the server's policy file."""
    idp_dir = demo.root / "idp"
    idp_dir.mkdir(mode=0o700)
    config = idp_dir / "idp.yaml"
    document = {
        "staticClients": [{"id": CLIENT_ID, "secret": demo.secret, "name": "imgctl demo"}],
        "users": {
            demo.user: {
                "keys": [key_line],
                "email": demo.email,
                "name": f"{demo.user} (imgctl demo)",
                "groups": [GROUP],
            }
        },
        "allowed_target_audiences": [AUDIENCE],
        "token_ttl": 3600,
    }
    _write_private(config, json.dumps(document, indent=2).encode())  # JSON is YAML
    _write_private(demo.root / "client-secret", demo.secret.encode())
    # The server's catalog takes writes only with a token (there is no anonymous default).
    _write_private(
        demo.catalog_tokens,
        json.dumps(
            {"tokens": [{"name": "demo", "token": demo.catalog_token, "is_disabled": False}]}
        ).encode(),
    )
    policy = demo.root / "policy.yaml"
    policy.write_text(f"destinations:\n  prod: [{GROUP}]\n")
    return config, policy


def _start_agent(demo: _Demo) -> _Child | None:
    """A private ssh-agent on its own socket, or None when the machine has no ssh-agent."""
    binary = shutil.which("ssh-agent", path=demo.base_env()["PATH"])
    if binary is None:
        return None
    sock = demo.root / "agent.sock"
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        # A deep work directory would overflow sun_path; /tmp keeps the socket path short.
        short_base = "/tmp" if os.path.isdir("/tmp") else None  # noqa: S108
        short = Path(tempfile.mkdtemp(prefix="imgctl-demo-agent-", dir=short_base))
        demo.scratch.append(short)
        sock = short / "agent.sock"
    demo.agent_socket = str(sock)
    return demo.spawn("ssh-agent", [binary, "-D", "-a", str(sock)], demo.base_env())


def _add_key(demo: _Demo, agent: _Child, key: _Key) -> str:
    """Put the fresh key into the private agent: ssh-add if there is one, else the protocol."""
    assert demo.agent_socket is not None
    deadline = time.monotonic() + START_TIMEOUT
    while not os.path.exists(demo.agent_socket):
        if agent.process.poll() is not None or time.monotonic() > deadline:
            raise _StepFailed(_START, "ssh-agent did not create its socket", agent.log)
        time.sleep(0.01)
    env = demo.base_env() | {"SSH_AUTH_SOCK": demo.agent_socket}
    ssh_add = shutil.which("ssh-add", path=env["PATH"])
    if ssh_add is not None:
        result = subprocess.run(
            [ssh_add, "-q", str(demo.key_file)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise _StepFailed(_START, f"ssh-add: {_last_line(result.stderr)}", agent.log)
        return "ssh-add"
    import asyncio

    from imgctl.identity._agent import add_ed25519_identity

    with _step(_START, agent.log):
        asyncio.run(
            add_ed25519_identity(
                demo.agent_socket, key.public, key.seed, f"{demo.user}@imgctl-demo"
            )
        )
    return "the agent protocol"


def _wait_ready(demo: _Demo, services: list[tuple[_Child, str]], what: str) -> None:
    """Poll each URL until it answers (any HTTP status); fail fast when its process exits."""
    import httpx

    pending = list(services)
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while pending:
            for child, url in list(pending):
                try:
                    client.get(url)
                except httpx.HTTPError:
                    code = child.process.poll()
                    if code is not None:
                        said = _last_line(child.log.read_text(errors="replace"))
                        raise _StepFailed(
                            what, f"{child.name} exited with status {code} ({said})", child.log
                        ) from None
                    if time.monotonic() > deadline:
                        raise _StepFailed(
                            what,
                            f"{child.name} did not answer {url} within {START_TIMEOUT:g} s",
                            child.log,
                        ) from None
                    continue
                pending.remove((child, url))
            if pending:
                time.sleep(0.05)


def _client(demo: _Demo, label: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run the real ``imgctl`` client with ``-o json``; return its command line and answer."""
    argv = [*args, "-u", demo.user, "-o", "json"]
    shown = "imgctl " + " ".join(argv)
    result = subprocess.run(
        [sys.executable, "-m", "imgctl", *argv],
        env=demo.client_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        cwd=demo.root,
        start_new_session=True,
    )
    log = demo.logs / "client.log"
    with log.open("a") as handle:
        handle.write(f"$ {shown}\n{result.stdout}{result.stderr}exit {result.returncode}\n")
    if result.returncode != 0:
        raise _StepFailed(
            label,
            f"`{shown}` exited with status {result.returncode}: {_last_line(result.stderr)}",
            demo.logs / "server.log",
        )
    try:
        answer: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise _StepFailed(label, f"`{shown}` printed no JSON", log) from None
    return shown, answer


async def _push_images(demo: _Demo) -> dict[str, DemoImage]:
    """Push the demo images to dev; return them by repository."""
    from imgctl.cli._demo_image import build_image, push_image
    from imgctl.remote import RegistryClient

    hello = build_image(*HELLO, "Hello from imgctl demo: promoted from dev to prod")
    unvetted = build_image(*UNVETTED, "Nobody promoted me")
    async with RegistryClient(options=_registry_options()) as client:
        for image in (hello, unvetted):
            await push_image(client, demo.address("dev"), image)
    return {"hello": hello, "unvetted": unvetted}


def _registry_options() -> ClientOptions:
    from imgctl.remote import ClientOptions

    # No proxies: the registries are on loopback, and the user's proxy must not see them.
    return ClientOptions(proxies={}, retries=1)


async def _digests(demo: _Demo) -> dict[str, str | None]:
    """HEAD the hello tag in dev and in prod."""
    from imgctl.oci.reference import Reference
    from imgctl.remote import RegistryClient

    found: dict[str, str | None] = {}
    async with RegistryClient(options=_registry_options()) as client:
        for env in ("dev", "prod"):
            descriptor = await client.head_manifest(
                Reference.parse(f"{demo.address(env)}/{HELLO[0]}:{HELLO[1]}")
            )
            found[env] = str(descriptor.digest) if descriptor else None
    return found


async def _audit_rows(demo: _Demo) -> list[AuditRecord]:
    from imgctl.store import AuditStore

    async with await AuditStore.open(f"sqlite:///{demo.database}") as store:
        return await store.recent(10)


def _admission_review(name: str, image: str) -> dict[str, Any]:
    """An AdmissionReview v1 for creating a one-container Pod, as the API server sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"imgctl-demo-{name}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "imgctl-demo"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


# -- the story ----------------------------------------------------------------------------------


@dataclass
class _Started:
    """The long-running children, by role."""

    registries: dict[str, _Child]
    idp: _Child
    server: _Child
    key: _Key
    added_with: str | None


def _start(demo: _Demo) -> _Started:
    """Write the configs and start every child at once; wait for nothing yet."""
    for directory in (demo.home, demo.logs, demo.database.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ports = _free_ports(5)
    demo.ports = dict(zip(("dev", "prod", "idp", "grpc", "http"), ports, strict=True))
    key = _make_key(demo)
    idp_config, policy = _write_configs(demo, key.line)
    registries = {
        env: demo.imgctl(
            f"registry-{env}",
            *("registry", "serve", "--root", str(demo.root / f"registry-{env}")),
            *("--address", demo.address(env)),
        )
        for env in ("dev", "prod")
    }
    idp = demo.imgctl(
        "idp", "idp", "serve", "--config", str(idp_config), "--address", demo.address("idp")
    )
    server = demo.spawn(
        "server",
        [
            *(sys.executable, "-m", "imgctl", "server"),
            *("--bind-address", demo.address("grpc"), "--http-address", demo.address("http")),
            # A short grace period: nobody else is calling, and cleanup should be quick.
            *("--policy-file", str(policy), "--grace", "1"),
            *("--tokens-file", str(demo.catalog_tokens)),
        ],
        demo.server_env(),
    )
    agent = _start_agent(demo)
    added_with = _add_key(demo, agent, key) if agent is not None else None
    return _Started(registries, idp, server, key, added_with)


def _show_started(demo: _Demo, started: _Started, seconds: float) -> None:
    from imgctl.identity.sshjwt import fingerprint, parse_authorized_key

    _, blob, _ = parse_authorized_key(started.key.line)
    if started.added_with is not None:
        held = f"held by a private ssh-agent (added with {started.added_with})"
    else:
        held = f"in {demo.key_file} (no ssh-agent on PATH)"
    _say(f"1. Started in {seconds:.1f} s, on loopback")
    _say(f"   registry dev   {demo.address('dev'):<22}  imgctl registry serve")
    _say(f"   registry prod  {demo.address('prod'):<22}  imgctl registry serve")
    _say(
        f"   issuer         {demo.issuer_url:<22}  imgctl idp serve: user {demo.user} "
        f"<{demo.email}>, group {GROUP}"
    )
    _say(
        f"   server gRPC    {demo.address('grpc'):<22}  imgctl server with SQLite; prod only for "
        f"group {GROUP}"
    )
    _say(f"   server HTTP    {demo.http_url:<22}  its catalog API and admission webhook")
    _say(f"   ssh key        ssh-ed25519 {fingerprint(blob)}, new, {held}")


def _show_pushed(demo: _Demo, images: dict[str, DemoImage]) -> None:
    hello, unvetted = images["hello"], images["unvetted"]
    _say(
        f"2. Pushed to dev {demo.address('dev')}: OCI indexes for "
        f"{' and '.join(hello.platforms)}, built in memory"
    )
    _say(f"   {HELLO[0]}:{HELLO[1]}      {hello.digest}")
    _say(f"   {UNVETTED[0]}:{UNVETTED[1]}   {unvetted.digest}  (never promoted)")


def _identity(demo: _Demo, server: _Child) -> None:
    label = "3 (sign in: imgctl auth-check)"
    with _step(label, server.log):
        shown, identity = _client(demo, label, "auth-check")
    _say("3. Signed in: SSH-signed JWT -> token exchange at the issuer -> AuthCheck on the server")
    _say(f"   $ {shown}")
    _say(
        f"   subject {identity.get('subject')} (Dex's encoding of user and connector), "
        f"email {identity.get('email')}"
    )
    _say(
        f"   groups {', '.join(identity.get('groups', [])) or 'none'}; "
        f"may promote to {', '.join(identity.get('destinations', [])) or 'nothing'}"
    )
    if identity.get("email") != demo.email or "prod" not in identity.get("destinations", []):
        raise _StepFailed(label, f"unexpected identity {identity}", server.log)


def _promote(demo: _Demo, server: _Child, digest: str) -> dict[str, Any]:
    label = "4 (promote: imgctl promote)"
    ref = f"{HELLO[0]}:{HELLO[1]}"
    with _step(label, server.log):
        shown, promoted = _client(demo, label, "promote", ref, "--source", "dev", "-d", "prod")
    _say("4. Promoted over gRPC: the server checked the token and the policy, then copied")
    _say(f"   $ {shown}")
    _say(
        f"   {promoted.get('blobsCopied')} blobs copied ({promoted.get('bytesCopied')} bytes) "
        f"in {promoted.get('durationMs')} ms for {promoted.get('promotedBy')}, "
        f"request {promoted.get('requestId')}"
    )
    if promoted.get("digest") != digest:
        raise _StepFailed(label, f"the server promoted {promoted.get('digest')}", server.log)
    return promoted


def _compare_digests(demo: _Demo) -> str:
    import asyncio

    label = "5 (digests in both registries)"
    with _step(label, demo.logs / "registry-prod.log"):
        digests = asyncio.run(_digests(demo))
    _say(f"5. Same digest in both registries (HEAD /v2/{HELLO[0]}/manifests/{HELLO[1]})")
    for env in ("dev", "prod"):
        _say(f"   {env:<5} {demo.address(env) + '/' + HELLO[0]:<32} {digests[env]}")
    if not digests["dev"] or digests["dev"] != digests["prod"]:
        raise _StepFailed(label, f"dev has {digests['dev']}, prod has {digests['prod']}")
    return digests["prod"]


def _audit(demo: _Demo, server: _Child, request_id: str) -> None:
    import asyncio

    label = "6 (audit row)"
    with _step(label, server.log):
        rows = asyncio.run(_audit_rows(demo))
    row = next((r for r in rows if r.request_id == request_id), None)
    if row is None:
        raise _StepFailed(label, f"no audit row for request {request_id}", server.log)
    _say(f"6. Audit row (table audit_events in {demo.database.relative_to(demo.root)})")
    _say(
        f"   {row.time:%Y-%m-%dT%H:%M:%SZ} {row.action} {row.result}: {row.email}, "
        f"{row.reference} {row.source_env} -> {row.destination_env}, {row.duration_ms} ms"
    )
    _say(f"   request {row.request_id}, digest {row.digest}")


def _catalog_and_admission(demo: _Demo, server: _Child, digest: str) -> None:
    import httpx

    label = "7 (catalog entry)"
    prod_image = f"{demo.address('prod')}/{HELLO[0]}:{HELLO[1]}"
    dev_unvetted = f"{demo.address('dev')}/{UNVETTED[0]}:{UNVETTED[1]}"
    with _step(label, server.log), httpx.Client(trust_env=False, timeout=10.0) as http:
        response = http.get(f"{demo.http_url}/images", params={"environment": "prod"})
        response.raise_for_status()
        entries = response.json()
        entry = next((e for e in entries if e.get("id") == digest), None)
        if entry is None:
            raise _StepFailed(label, f"no catalog entry for {digest}: {entries}", server.log)
        _say("7. Catalog entry (GET /images?environment=prod on the server's HTTP side)")
        _say(f"   {entry.get('name')}:{','.join(entry.get('tags', []))}  id {entry.get('id')}")
        _say(f"   promoted by {entry.get('promoted_by')} at {entry.get('promoted_at')}")

        label = "8 (admission decisions)"
        _say("8. Admission webhook (POST /admission/prod with a Pod's AdmissionReview)")
        pods = (("hello", prod_image, True), ("unvetted", dev_unvetted, False))
        for name, image, expected in pods:
            review = _admission_review(name, image)
            # Kept for --keep's curl example: the exact request the cluster would send.
            (demo.root / f"admission-{name}.json").write_text(json.dumps(review, indent=2))
            response = http.post(f"{demo.http_url}/admission/prod", json=review)
            response.raise_for_status()
            answer = response.json()["response"]
            allowed = answer.get("allowed") is True
            message = answer.get("status", {}).get("message")
            _say(f"   Pod using {image:<42} {'allowed' if allowed else 'denied'}")
            if message:
                _say(f"     {message}")
            if allowed is not expected:
                verdict = "allowed" if allowed else "denied"
                raise _StepFailed(label, f"the Pod using {image} was {verdict}", server.log)


def _story(demo: _Demo, started_at: float) -> None:
    """Start everything, use it once, and say what happened at each step."""
    import asyncio

    _say(f"imgctl demo: every part of imgctl, started under {demo.root}")
    _say()
    label = _START
    with _step(label):
        started = _start(demo)
        _wait_ready(
            demo,
            [(child, f"http://{demo.address(e)}/v2/") for e, child in started.registries.items()],
            label,
        )
    # The registries answer while the server is still importing: push now, show it after.
    with _step("2 (push the demo images to dev)", started.registries["dev"].log):
        images = asyncio.run(_push_images(demo))
    with _step(label):
        _wait_ready(
            demo,
            [
                (started.idp, f"{demo.issuer_url}/healthz"),
                (started.server, f"{demo.http_url}/readyz"),
            ],
            label,
        )
    _show_started(demo, started, time.monotonic() - started_at)
    _show_pushed(demo, images)
    _identity(demo, started.server)
    promoted = _promote(demo, started.server, str(images["hello"].digest))
    digest = _compare_digests(demo)
    _audit(demo, started.server, str(promoted.get("requestId")))
    _catalog_and_admission(demo, started.server, digest)


def _print_commands(demo: _Demo) -> None:
    """What to run by hand while everything keeps running."""
    watches = demo.root / "watches.yaml"
    watches.write_text(
        "watches:\n"
        f"  - name: hello\n    image: {demo.address('dev')}/{HELLO[0]}\n"
        "    interval: 1m\n    policy: {semver: {range: '>=1.0.0'}}\n"
    )
    # A Pod using the prod copy of the unvetted image: denied now, allowed once promoted.
    review = demo.root / "admission-unvetted-prod.json"
    prod_unvetted = f"{demo.address('prod')}/{UNVETTED[0]}:{UNVETTED[1]}"
    review.write_text(json.dumps(_admission_review("unvetted", prod_unvetted), indent=2))
    curl = (
        f"curl -s -w '\\n' -H 'Content-Type: application/json' --data @{review} "
        f"{demo.http_url}/admission/prod"
    )
    key = f" -f {demo.key_file}" if not demo.agent_socket else ""
    agent = f"SSH_AUTH_SOCK={demo.agent_socket}" if demo.agent_socket else ""
    lines = [
        f"export IMGCTL_SERVER={demo.address('grpc')} IMGCTL_TLS=false DEX_URL={demo.issuer_url}",
        f"export IMGCTL_AUDIENCE={AUDIENCE} IMGCTL_CLIENT_ID={CLIENT_ID} "
        f"KUBECTL_SSH_USER={demo.user}",
        f'export IMGCTL_CLIENT_SECRET="$(cat {demo.root / "client-secret"})"',
        # The demo's tokens stay out of ~/.cache; the demo's agent (or none) instead of yours.
        f"export XDG_CACHE_HOME={demo.home / '.cache'} {agent}".rstrip(),
        *([] if demo.agent_socket else ["unset SSH_AUTH_SOCK"]),
        "",
        f"imgctl ls {demo.address('dev')}/{HELLO[0]}",
        f"imgctl digest {demo.address('prod')}/{HELLO[0]}:{HELLO[1]}",
        f"imgctl auth-check{key}",
        f"{curl}    # denied: {prod_unvetted} was never promoted",
        f"imgctl promote {UNVETTED[0]}:{UNVETTED[1]} --source dev -d prod{key}",
        f"{curl}    # allowed now",
        f"imgctl catalog ls --catalog-url {demo.http_url} -e prod",
        f"imgctl scan --config {watches} --once",
    ]
    _say()
    _say("Everything keeps running. In another terminal, try:")
    _say()
    for line in lines:
        _say(f"  {line}" if line else "")
    _say()
    _say(f"Logs are in {demo.logs}. Ctrl-C stops everything and removes {demo.root}.")


def _hold(demo: _Demo) -> None:
    """Keep running until a signal; a child that dies ends the demo as a failure."""
    while True:
        for child in demo.children:
            code = child.process.poll()
            if code is not None:
                raise _StepFailed("--keep", f"{child.name} exited with status {code}", child.log)
        time.sleep(0.5)


def _prepare_root(workdir: Path | None) -> tuple[Path, bool]:
    """A fresh temporary directory, or ``workdir`` (created if missing, must be empty)."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="imgctl-demo-")).resolve(), True
    root = workdir.expanduser().resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(root.iterdir()):
        from imgctl.cli._registry import EXIT_INVALID, fail

        fail(f"--workdir {root} is not empty; give an empty or new directory", EXIT_INVALID)
    return root, False


def run(keep: bool = False, workdir: Path | None = None) -> None:
    """``imgctl demo``: start everything, tell the story, clean up (or keep it running)."""
    started_at = time.monotonic()
    signals = _Signals()
    signals.install()
    code = 0
    failure: _StepFailed | None = None
    demo: _Demo | None = None
    holding = False
    try:
        with signals.deferred():  # a directory made is a directory cleanup knows about
            root, owns_root = _prepare_root(workdir)
            demo = _Demo(root, owns_root, signals, user=_user_name())
        _story(demo, started_at)
        _say()
        _say(f"Done in {time.monotonic() - started_at:.1f} s: promoted, recorded, admitted.")
        if keep:
            _print_commands(demo)
            holding = True
            _hold(demo)
    except KeyboardInterrupt:
        # Ctrl-C is how --keep ends, but it is still an interrupt: 130 (143 for SIGTERM).
        code = signals.code or 130
        what = "stopping everything" if holding else "interrupted; stopping everything"
        print(f"\nimgctl demo: {what}", file=sys.stderr, flush=True)
    except _StepFailed as exc:
        code, failure = 1, exc
    except Exception as exc:  # a bug, not a user mistake: still clean up and say so in one line
        code, failure = 1, _StepFailed("(unexpected)", f"{type(exc).__name__}: {exc}")
    finally:
        signals.ignore()
        kept: Path | None = None
        try:
            if demo is not None:
                demo.stop()
                if failure is not None:
                    kept = demo.keep_logs()
                demo.remove()
        finally:
            signals.restore()
    if failure is not None:
        print(f"imgctl: error: demo step {failure.step} failed: {failure.message}", file=sys.stderr)
        if kept is not None:
            log = kept / failure.log.name if failure.log is not None else kept
            print(f"imgctl: see {log} (every log is kept in {kept})", file=sys.stderr)
    elif demo is not None:
        where = f"removed {demo.root}" if demo.owns_root else f"left {demo.root} in place"
        print(f"Stopped everything and {where}.", file=sys.stderr if code else sys.stdout)
    if code:
        raise SystemExit(code)
