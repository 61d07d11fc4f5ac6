"""The demo's work directory and what runs in it: keys, configs, the children's environments.

Nothing outside the work directory is touched: every child gets a ``HOME`` inside it, the
user's ``SSH_AUTH_SOCK``, docker config and XDG directories are never passed on, and the client
settings are given as environment variables so that a wheel's baked-in defaults cannot send the
demo to a real server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imgctl.cli.demo._supervise import (
    CLIENT_TIMEOUT,
    START_TIMEOUT,
    Child,
    Signals,
    StepFailed,
    free_ports,
    last_line,
    start_child,
    step,
    stop_children,
)

__all__ = [
    "AUDIENCE",
    "CLIENT_ID",
    "GROUP",
    "HELLO",
    "START_STEP",
    "UNSIGNED",
    "UNVETTED",
    "Demo",
    "Key",
    "Started",
    "prepare_root",
    "start",
    "user_name",
]

GROUP = "release-managers"
AUDIENCE = "imgctl-demo"
CLIENT_ID = "imgctl"
HELLO = ("demo/hello", "1.0.0")
UNVETTED = ("demo/unvetted", "0.1.0")
# Copied into prod by hand and recorded in the catalog, but never signed: what the signature
# rule of admission is for.
UNSIGNED = ("demo/unsigned", "0.1.0")
# sun_path is 108 bytes on Linux and 104 on macOS; stay under both.
MAX_SOCKET_PATH = 100
START_STEP = "1 (start the registries, issuer, ssh-agent and server)"
_USER_RE = re.compile(r"[a-z_][a-z0-9._-]{0,31}")


def user_name() -> str:
    """The current user as an issuer user name, or ``demo`` when it cannot be one."""
    import getpass

    try:
        name = getpass.getuser().strip().lower()
    except Exception:  # getpass raises OSError, KeyError... when there is no user entry
        return "demo"
    return name if _USER_RE.fullmatch(name) else "demo"


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start, never briefly readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


@dataclass
class Demo:
    """Everything the demo started, and what it learned on the way."""

    root: Path
    owns_root: bool
    signals: Signals
    children: list[Child] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    user: str = "demo"
    agent_socket: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    catalog_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # The password of the signing key (cosign format); only the server gets it (COSIGN_PASSWORD).
    cosign_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

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
    def sign_key(self) -> Path:
        """The server's signing key, cosign's encrypted format (what generate-key-pair writes)."""
        return self.root / "cosign.key"

    @property
    def verify_key(self) -> Path:
        """Its public half: what ``imgctl verify --key`` and the admission rule check against."""
        return self.root / "cosign.pub"

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
            "COSIGN_PASSWORD": self.cosign_password,
        }

    # -- children -----------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        """Start a child in its own session and register it for cleanup in the same breath."""
        return start_child(
            self.signals,
            self.children,
            name,
            argv,
            env,
            log=self.logs / f"{name}.log",
            cwd=self.root,
        )

    def imgctl(self, name: str, *args: str) -> Child:
        """Start ``imgctl ARGS`` with this interpreter (no console script needed on PATH)."""
        return self.spawn(name, [sys.executable, "-m", "imgctl", *args], self.base_env())

    def stop(self) -> None:
        """Terminate every child (whole process group), wait, kill what is left."""
        stop_children(self.children)

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


@dataclass(frozen=True)
class Key:
    """The demo user's fresh key: its ``authorized_keys`` line and raw halves."""

    line: str
    seed: bytes = field(repr=False)
    public: bytes


def make_key(demo: Demo) -> Key:
    """Generate an ed25519 key into the demo's HOME (OpenSSH format, 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    ssh_dir = demo.key_file.parent
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(
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
    return Key(
        line,
        key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        key.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
    )


def write_configs(demo: Demo, key_line: str) -> tuple[Path, Path]:
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
    write_private(config, json.dumps(document, indent=2).encode())  # JSON is YAML
    write_private(demo.root / "client-secret", demo.secret.encode())
    # The server's catalog takes writes only with a token (there is no anonymous default).
    write_private(
        demo.catalog_tokens,
        json.dumps(
            {"tokens": [{"name": "demo", "token": demo.catalog_token, "is_disabled": False}]}
        ).encode(),
    )
    policy = demo.root / "policy.yaml"
    policy.write_text(f"destinations:\n  prod: [{GROUP}]\n")
    return config, policy


def start_agent(demo: Demo) -> Child | None:
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


def _accepts(path: str) -> bool:
    """Whether a Unix socket at ``path`` accepts a connection now."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def add_key(demo: Demo, agent: Child, key: Key) -> str:
    """Put the fresh key into the private agent: ssh-add if there is one, else the protocol."""
    assert demo.agent_socket is not None
    deadline = time.monotonic() + START_TIMEOUT
    # The socket file appears at bind(), before the agent listens; a connect() in between is
    # refused (ssh-add exits 2), so wait until the agent accepts a connection.
    while not _accepts(demo.agent_socket):
        if agent.process.poll() is not None or time.monotonic() > deadline:
            raise StepFailed(START_STEP, "ssh-agent did not listen on its socket", agent.log)
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
            raise StepFailed(START_STEP, f"ssh-add: {last_line(result.stderr)}", agent.log)
        return "ssh-add"
    import asyncio

    from imgctl.identity._agent import add_ed25519_identity

    with step(START_STEP, agent.log):
        asyncio.run(
            add_ed25519_identity(
                demo.agent_socket, key.public, key.seed, f"{demo.user}@imgctl-demo"
            )
        )
    return "the agent protocol"


@dataclass
class Started:
    """The long-running children, by role."""

    registries: dict[str, Child]
    idp: Child
    server: Child
    key: Key
    added_with: str | None


def start(demo: Demo) -> Started:
    """Write the configs and start every child at once; wait for nothing yet."""
    for directory in (demo.home, demo.logs, demo.database.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ports = free_ports(5)
    demo.ports = dict(zip(("dev", "prod", "idp", "grpc", "http"), ports, strict=True))
    key = make_key(demo)
    idp_config, policy = write_configs(demo, key.line)
    from imgctl.trust import generate_key_pair

    generate_key_pair(demo.root / "cosign", demo.cosign_password.encode())
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
            # Every promotion is signed and attested, and admission to prod wants both.
            *("--sign-key", demo.sign_key.name),
            *("--require-signature", f"prod={demo.verify_key.name}"),
            *("--require-attestation", f"prod={demo.verify_key.name}"),
        ],
        demo.server_env(),
    )
    agent = start_agent(demo)
    added_with = add_key(demo, agent, key) if agent is not None else None
    return Started(registries, idp, server, key, added_with)


def prepare_root(workdir: Path | None) -> tuple[Path, bool]:
    """A fresh temporary directory, or ``workdir`` (created if missing, must be empty)."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="imgctl-demo-")).resolve(), True
    root = workdir.expanduser().resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(root.iterdir()):
        from imgctl.cli._exit import EXIT_INVALID, fail

        fail(f"--workdir {root} is not empty; give an empty or new directory", EXIT_INVALID)
    return root, False
