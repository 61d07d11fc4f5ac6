"""A minimal ssh-agent protocol client (draft-miller-ssh-agent), over the agent's UNIX socket.

Only the two requests imgctl needs: list identities and sign. Each call opens its own
connection, so concurrent signatures never interleave on one socket. Also home to the SSH wire
encoding helpers (RFC 4251 ``string``, ``uint32``, ``mpint``) that ``sshjwt`` shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

from imgctl.errors import IdentityError

__all__ = [
    "AgentIdentity",
    "WireError",
    "WireReader",
    "add_ed25519_identity",
    "list_identities",
    "sign",
    "ssh_mpint",
    "ssh_string",
]

SSH_AGENT_FAILURE = 5
SSH_AGENT_SUCCESS = 6
SSH_AGENTC_REQUEST_IDENTITIES = 11
SSH_AGENT_IDENTITIES_ANSWER = 12
SSH_AGENTC_SIGN_REQUEST = 13
SSH_AGENT_SIGN_RESPONSE = 14
SSH2_AGENTC_ADD_IDENTITY = 17
# Other agents (and OpenSSH's extension replies) use these to say "no" as well.
SSH_AGENT_EXTENDED_FAILURE = 30
SSH_COM_AGENT2_FAILURE = 102
_FAILURES = frozenset({SSH_AGENT_FAILURE, SSH_AGENT_EXTENDED_FAILURE, SSH_COM_AGENT2_FAILURE})

# OpenSSH's own cap on one agent message; anything larger is a broken or hostile peer.
MAX_MESSAGE = 256 * 1024
MAX_IDENTITIES = 2048

CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 10.0
ADD_TIMEOUT = 10.0
# Generous: an agent may ask the user to confirm each use of a key (ssh-add -c).
SIGN_TIMEOUT = 120.0

_AGENT_HINT = (
    "check SSH_AUTH_SOCK, or start an agent with `eval $(ssh-agent)` "
    "and add your key with `ssh-add`"
)


class WireError(ValueError):
    """Bytes that do not follow the SSH wire encoding."""


class WireReader:
    """Reads RFC 4251 values from a byte string, refusing truncated input."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise WireError("truncated data")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte(self) -> int:
        """One byte as an integer."""
        return self._take(1)[0]

    def uint32(self) -> int:
        """A big-endian unsigned 32-bit integer."""
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def string(self) -> bytes:
        """A length-prefixed byte string."""
        return self._take(self.uint32())

    def mpint(self) -> int:
        """A two's complement big-endian integer (an SSH ``mpint``)."""
        return int.from_bytes(self.string(), "big", signed=True)

    def at_end(self) -> bool:
        """True when every byte has been read."""
        return self._pos == len(self._data)

    def finish(self) -> None:
        """Refuse trailing bytes: a value followed by junk is not that value."""
        if not self.at_end():
            raise WireError("trailing data")


def ssh_string(data: bytes) -> bytes:
    """Encode ``data`` as an SSH ``string``."""
    return struct.pack(">I", len(data)) + data


def ssh_mpint(value: int) -> bytes:
    """Encode ``value`` as an SSH ``mpint`` (minimal two's complement, zero is empty)."""
    if value == 0:
        return ssh_string(b"")
    length = (value.bit_length() + 8) // 8  # one spare bit for the sign
    raw = value.to_bytes(length, "big", signed=True)
    # Strip redundant sign bytes so the encoding is the minimal one RFC 4251 requires.
    while len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raw = raw[1:]
    return ssh_string(raw)


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """One key the agent holds: its public wire blob and comment."""

    blob: bytes
    comment: str


async def _exchange(socket_path: str, request: bytes, reply_within: float) -> tuple[int, bytes]:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(socket_path), CONNECT_TIMEOUT
        )
    except TimeoutError:
        raise IdentityError(
            f"cannot reach ssh-agent at {socket_path}: connection timed out", hint=_AGENT_HINT
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise IdentityError(
            f"cannot reach ssh-agent at {socket_path}: {reason}", hint=_AGENT_HINT
        ) from None
    try:
        async with asyncio.timeout(reply_within):
            writer.write(ssh_string(request))
            await writer.drain()
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            if length == 0 or length > MAX_MESSAGE:
                raise IdentityError(f"ssh-agent at {socket_path} sent a malformed reply")
            body = await reader.readexactly(length)
    except TimeoutError:
        raise IdentityError(
            f"ssh-agent at {socket_path} did not answer within {reply_within:g} s",
            hint="if it asks for confirmation, accept the prompt; otherwise restart the agent",
        ) from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise IdentityError(
            f"connection to ssh-agent at {socket_path} failed: "
            f"{getattr(exc, 'strerror', None) or 'the agent closed the connection'}",
            hint=_AGENT_HINT,
        ) from None
    finally:
        writer.close()
        # The agent hanging up first is normal; nothing is lost.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return body[0], body[1:]


async def list_identities(socket_path: str) -> list[AgentIdentity]:
    """Ask the agent for its keys (REQUEST_IDENTITIES), in the agent's order."""
    kind, body = await _exchange(socket_path, bytes([SSH_AGENTC_REQUEST_IDENTITIES]), LIST_TIMEOUT)
    if kind in _FAILURES:
        raise IdentityError(f"ssh-agent at {socket_path} refused to list its keys")
    if kind != SSH_AGENT_IDENTITIES_ANSWER:
        raise IdentityError(
            f"ssh-agent at {socket_path} answered a key listing with message type {kind}"
        )
    try:
        wire = WireReader(body)
        count = wire.uint32()
        if count > MAX_IDENTITIES:
            raise WireError("too many identities")
        identities = [
            AgentIdentity(wire.string(), wire.string().decode("utf-8", "replace"))
            for _ in range(count)
        ]
        wire.finish()
    except WireError as exc:
        raise IdentityError(
            f"ssh-agent at {socket_path} sent a malformed key listing ({exc})"
        ) from None
    return identities


async def sign(socket_path: str, key_blob: bytes, data: bytes, flags: int = 0) -> bytes:
    """Have the agent sign ``data`` with ``key_blob``; returns the agent's signature wrapper.

    The wrapper is the SSH encoding ``string format, string blob``; callers unwrap it.
    """
    request = (
        bytes([SSH_AGENTC_SIGN_REQUEST])
        + ssh_string(key_blob)
        + ssh_string(data)
        + struct.pack(">I", flags)
    )
    kind, body = await _exchange(socket_path, request, SIGN_TIMEOUT)
    if kind in _FAILURES:
        raise IdentityError(
            f"ssh-agent at {socket_path} refused to sign",
            hint="the key may have been removed, be locked, or need confirmation; "
            "check `ssh-add -l`",
        )
    if kind != SSH_AGENT_SIGN_RESPONSE:
        raise IdentityError(
            f"ssh-agent at {socket_path} answered a sign request with message type {kind}"
        )
    try:
        wire = WireReader(body)
        signature = wire.string()
        wire.finish()
    except WireError as exc:
        raise IdentityError(
            f"ssh-agent at {socket_path} sent a malformed signature ({exc})"
        ) from None
    return signature


# -- adding a key (imgctl demo fills its private agent with a fresh key) ----------------------


async def add_ed25519_identity(
    socket_path: str, public_key: bytes, seed: bytes, comment: str = ""
) -> None:
    """Give the agent an ed25519 key (ADD_IDENTITY): ``public_key`` and ``seed`` are 32 bytes.

    The wire form of the private part is ``seed || public_key``, as OpenSSH stores it.
    """
    if len(public_key) != 32 or len(seed) != 32:
        raise ValueError("an ed25519 key has a 32-byte public key and a 32-byte seed")
    request = (
        bytes([SSH2_AGENTC_ADD_IDENTITY])
        + ssh_string(b"ssh-ed25519")
        + ssh_string(public_key)
        + ssh_string(seed + public_key)
        + ssh_string(comment.encode("utf-8"))
    )
    kind, _ = await _exchange(socket_path, request, ADD_TIMEOUT)
    if kind != SSH_AGENT_SUCCESS:
        raise IdentityError(f"ssh-agent at {socket_path} refused to add the key (type {kind})")
