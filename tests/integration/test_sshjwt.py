"""SSH keys and SSH-signed JWTs: the INTEROP test vector, a real ssh-agent, key files, parsing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
import time
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from imgctl.errors import IdentityError, InvalidTokenError
from imgctl.identity import _agent
from imgctl.identity._agent import WireReader, ssh_mpint, ssh_string
from imgctl.identity._sshkeys import SK_REASON
from imgctl.identity.sshjwt import (
    ParsedSSHJWT,
    Skipped,
    SSHKey,
    agent_keys,
    build_claims,
    candidate_keys,
    default_key_files,
    fingerprint,
    load_key_file,
    parse_authorized_key,
    parse_ssh_jwt,
    public_key_line,
    sign_jwt,
    verify_ssh_signature,
)

from ..support.sshkeys import KEY_KINDS, Agent, Key, keygen, require

# -- INTEROP section 1 test vector -------------------------------------------------------------

VECTOR_SEED = bytes(range(32))
VECTOR_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
VECTOR_PUBLIC_BLOB = base64.b64decode(VECTOR_PUBLIC.split()[1])
VECTOR_PAYLOAD = (
    '{"aud":"https://dex.example.com","exp":4102444800,"iat":1700000000,'
    '"iss":"kubectl-ssh-oidc","jti":"00112233445566778899aabbccddeeff","nbf":1700000000,'
    '"sub":"alice","target_audience":"kubectl"}'
)
VECTOR_JWT = (
    "eyJhbGciOiJTU0giLCJ0eXAiOiJKV1QifQ."
    "eyJhdWQiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwLCJp"
    "c3MiOiJrdWJlY3RsLXNzaC1vaWRjIiwianRpIjoiMDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmYiLCJuYmYi"
    "OjE3MDAwMDAwMDAsInN1YiI6ImFsaWNlIiwidGFyZ2V0X2F1ZGllbmNlIjoia3ViZWN0bCJ9."
    "RlZlTkJHT09hOWhXS1hIeUozRlpKdXdyZzdtRHlNZlc1STl3aVY0a0NHNkllWXM4TGRLdUwwWXEwUnBGakVZVGg3eXJv"
    "SjdzSnFoQnZLNXBiMFg2Q0E9PQ"
)

ECDSA_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
    "ecdsa-sha2-nistp521": hashes.SHA512,
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("keys")
    return {kind: keygen(directory, kind) for kind in KEY_KINDS}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Key]) -> Iterator[Agent]:
    started = Agent(tmp_path_factory.mktemp("agent"))
    try:
        started.add(*keys.values())
        yield started
    finally:
        started.stop()


@pytest.fixture
def fresh_agent(tmp_path: Path) -> Iterator[Agent]:
    started = Agent(tmp_path / "agent")
    try:
        yield started
    finally:
        started.stop()


def vector_key_file(directory: Path, fmt: str) -> Path:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    if fmt == "openssh":
        data = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    else:
        data = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path = directory / f"vector_{fmt}"
    path.write_bytes(data)
    return path


VECTOR_CLAIMS = build_claims(
    username="alice",
    issuer_url="https://dex.example.com",
    target_audience="kubectl",
    now=1700000000,
    jti="00112233445566778899aabbccddeeff",
    lifetime=4102444800 - 1700000000,
)


# -- the test vector ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["openssh", "pkcs8"])
async def test_interop_vector_byte_for_byte(tmp_path: Path, fmt: str) -> None:
    key = load_key_file(vector_key_file(tmp_path, fmt))
    assert public_key_line(key) == VECTOR_PUBLIC
    assert key.key_type == "ssh-ed25519"
    assert key.source == str(tmp_path / f"vector_{fmt}")
    token = await sign_jwt(key, VECTOR_CLAIMS)
    assert token == VECTOR_JWT
    assert _b64url_decode(token.split(".")[1]).decode() == VECTOR_PAYLOAD


async def test_vector_verifies_and_parses() -> None:
    parsed = parse_ssh_jwt(VECTOR_JWT)
    assert parsed.header == {"alg": "SSH", "typ": "JWT"}
    assert parsed.claims == json.loads(VECTOR_PAYLOAD)
    assert parsed.signing_input == VECTOR_JWT.rsplit(".", 1)[0].encode()
    assert len(parsed.signature) == 64
    assert verify_ssh_signature(VECTOR_PUBLIC, parsed.signing_input, parsed.signature)
    blob = parse_authorized_key(VECTOR_PUBLIC)[1]
    assert verify_ssh_signature(blob, parsed.signing_input, parsed.signature)


def test_vector_comment_from_pub_file(tmp_path: Path) -> None:
    path = vector_key_file(tmp_path, "openssh")
    path.with_name(path.name + ".pub").write_text(VECTOR_PUBLIC + " alice@laptop\n")
    for given in (path, path.with_name(path.name + ".pub")):
        key = load_key_file(given)
        assert key.comment == "alice@laptop"
        assert public_key_line(key) == VECTOR_PUBLIC + " alice@laptop"
        assert key.source == str(given)


# -- claims and token shape --------------------------------------------------------------------


def test_build_claims_exactly_interop() -> None:
    claims = build_claims(
        username="bob", issuer_url="https://idp.example.com", target_audience="imgctl", now=1000
    )
    assert set(claims) == {"iss", "sub", "aud", "target_audience", "jti", "iat", "nbf", "exp"}
    assert claims["iss"] == "kubectl-ssh-oidc"
    assert claims["sub"] == "bob"
    assert claims["aud"] == "https://idp.example.com"
    assert claims["target_audience"] == "imgctl"
    assert claims["iat"] == claims["nbf"] == 1000
    assert claims["exp"] == 1300
    jti = claims["jti"]
    assert isinstance(jti, str)
    assert len(jti) == 32
    assert int(jti, 16) >= 0
    again = build_claims(username="bob", issuer_url="u", target_audience="t")
    assert again["jti"] != jti
    assert isinstance(again["iat"], int)
    assert abs(again["iat"] - time.time()) < 5


@pytest.mark.parametrize("field", ["username", "issuer_url", "target_audience"])
def test_build_claims_refuses_empty(field: str) -> None:
    values = {"username": "a", "issuer_url": "b", "target_audience": "c", field: ""}
    with pytest.raises(IdentityError, match="empty"):
        build_claims(
            username=values["username"],
            issuer_url=values["issuer_url"],
            target_audience=values["target_audience"],
        )


async def test_sign_jwt_header_is_compact_sorted(tmp_path: Path) -> None:
    key = load_key_file(vector_key_file(tmp_path, "openssh"))
    token = await sign_jwt(key, {"z": 1, "a": "é"})
    header, payload, _ = token.split(".")
    assert _b64url_decode(header) == b'{"alg":"SSH","typ":"JWT"}'
    assert _b64url_decode(payload) == b'{"a":"\\u00e9","z":1}'
    assert "=" not in token


# -- a real ssh-agent --------------------------------------------------------------------------


async def test_agent_lists_keys_in_agent_order(agent: Agent, keys: dict[str, Key]) -> None:
    listed = await agent_keys(agent.socket)
    assert [public_key_line(k) for k in listed] == [k.line for k in keys.values()]
    assert [k.source for k in listed] == ["ssh-agent"] * len(keys)
    assert [k.comment for k in listed] == [f"{kind} test key" for kind in keys]
    assert [k.key_type for k in listed] == [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    ]


def _agent_key(listed: list[SSHKey], key: Key) -> SSHKey:
    return next(k for k in listed if k.public_blob == key.blob)


@pytest.mark.parametrize("kind", list(KEY_KINDS))
async def test_agent_and_file_signatures_verify(
    agent: Agent, keys: dict[str, Key], kind: str
) -> None:
    key = keys[kind]
    via_agent = _agent_key(await agent_keys(agent.socket), key)
    via_file = load_key_file(key.private)
    assert via_file.public_blob == via_agent.public_blob == key.blob
    assert public_key_line(via_file) == key.line
    data = b"header.payload"
    for signer in (via_agent, via_file):
        signature = await signer.sign(data)
        assert verify_ssh_signature(key.line, data, signature), signer
        assert verify_ssh_signature(key.blob, data, signature)
        assert not verify_ssh_signature(key.line, data + b"x", signature)
        token = await sign_jwt(signer, VECTOR_CLAIMS)
        parsed = parse_ssh_jwt(token)
        assert parsed.claims == VECTOR_CLAIMS
        assert verify_ssh_signature(key.line, parsed.signing_input, parsed.signature)
    if kind == "ed25519":  # deterministic: both paths must give the very same bytes
        assert await via_agent.sign(data) == await via_file.sign(data)


def _public(key: Key) -> object:
    return serialization.load_ssh_public_key(key.line.encode())


async def test_agent_rsa_signature_is_ssh_rsa_sha1(agent: Agent, keys: dict[str, Key]) -> None:
    key = keys["rsa"]
    via_agent = _agent_key(await agent_keys(agent.socket), key)
    data = b"sign me"
    signature = await via_agent.sign(data)
    public = _public(key)
    assert isinstance(public, rsa.RSAPublicKey)
    assert len(signature) == public.key_size // 8
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(InvalidSignature):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    # The file path produces the same deterministic PKCS#1 v1.5 signature.
    assert await load_key_file(key.private).sign(data) == signature


@pytest.mark.parametrize("kind", ["ecdsa256", "ecdsa384", "ecdsa521"])
async def test_ecdsa_signature_is_mpint_pair(agent: Agent, keys: dict[str, Key], kind: str) -> None:
    key = keys[kind]
    public = _public(key)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    key_type = key.line.split()[0]
    via_agent = _agent_key(await agent_keys(agent.socket), key)
    for signer in (via_agent, load_key_file(key.private)):
        signature = await signer.sign(b"data")
        wire = WireReader(signature)
        r, s = wire.mpint(), wire.mpint()
        wire.finish()
        assert r > 0
        assert s > 0
        public.verify(encode_dss_signature(r, s), b"data", ec.ECDSA(ECDSA_HASHES[key_type]()))


@pytest.mark.parametrize("kind", list(KEY_KINDS))
def test_fingerprint_matches_ssh_keygen(keys: dict[str, Key], kind: str) -> None:
    key = keys[kind]
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(key.pub)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert fingerprint(key.blob) == out.split()[1]


def test_key_reprs_hold_no_secrets(keys: dict[str, Key], tmp_path: Path) -> None:
    key = load_key_file(keys["rsa"].private)
    shown = repr(key)
    assert fingerprint(keys["rsa"].blob) in shown
    assert "PRIVATE" not in shown
    assert "_private" not in shown


# -- a fake agent, for answers OpenSSH's agent never gives -------------------------------------


Handler = Callable[[bytes], Awaitable[bytes | None]]


@dataclass
class FakeAgent:
    socket: str
    server: asyncio.Server


async def _serve(path: Path, handler: Handler) -> FakeAgent:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack(">I", await reader.readexactly(4))[0]
                reply = await handler(await reader.readexactly(length))
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path))
    return FakeAgent(str(path), server)


@pytest.fixture
async def fake_agent(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Awaitable[FakeAgent]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> FakeAgent:
        fake = await _serve(tmp_path / f"fake{len(servers)}.sock", handler)
        servers.append(fake.server)
        return fake

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _message(kind: int, body: bytes = b"") -> bytes:
    return ssh_string(bytes([kind]) + body)


def _identities(*entries: tuple[bytes, str]) -> bytes:
    body = struct.pack(">I", len(entries))
    for blob, comment in entries:
        body += ssh_string(blob) + ssh_string(comment.encode())
    return _message(12, body)


def _sk_blob() -> bytes:
    return ssh_string(b"sk-ssh-ed25519@openssh.com") + ssh_string(bytes(32)) + ssh_string(b"ssh:")


def _cert_blob() -> bytes:
    return ssh_string(b"ssh-ed25519-cert-v01@openssh.com") + ssh_string(bytes(32))


async def test_agent_rsa_signed_with_sha2_is_refused(
    fake_agent: Callable[[Handler], Awaitable[FakeAgent]], keys: dict[str, Key]
) -> None:
    rsa_key = keys["rsa"]
    seen_flags: list[int] = []

    async def handler(request: bytes) -> bytes:
        if request[0] == 11:
            return _identities((rsa_key.blob, "rsa"))
        wire = WireReader(request[1:])
        wire.string()
        wire.string()
        seen_flags.append(wire.uint32())
        wrapped = ssh_string(b"rsa-sha2-256") + ssh_string(b"\x01" * 256)
        return _message(14, ssh_string(wrapped))

    fake = await fake_agent(handler)
    [key] = await agent_keys(fake.socket)
    with pytest.raises(IdentityError, match=r"rsa-sha2-256, not ssh-rsa") as caught:
        await key.sign(b"data")
    assert "ssh-rsa" in (caught.value.hint or "")
    assert seen_flags == [0]


async def test_agent_failure_and_garbage_are_identity_errors(
    fake_agent: Callable[[Handler], Awaitable[FakeAgent]], keys: dict[str, Key]
) -> None:
    replies: dict[int, bytes | None] = {
        11: _identities((keys["ed25519"].blob, "k")),
        13: _message(5),
    }

    async def handler(request: bytes) -> bytes | None:
        return replies[request[0]]

    fake = await fake_agent(handler)
    [key] = await agent_keys(fake.socket)
    with pytest.raises(IdentityError, match="refused to sign"):
        await key.sign(b"data")

    replies[13] = _message(14, ssh_string(ssh_string(b"ssh-ed25519")))  # blob missing
    with pytest.raises(IdentityError, match="malformed signature"):
        await key.sign(b"data")

    replies[13] = _message(14, ssh_string(ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(b"x")))
    with pytest.raises(IdentityError, match="expected ssh-ed25519"):
        await key.sign(b"data")

    replies[13] = None  # hang up
    with pytest.raises(IdentityError, match="closed the connection"):
        await key.sign(b"data")

    replies[11] = struct.pack(">I", _agent.MAX_MESSAGE + 1) + b"\x0c"
    with pytest.raises(IdentityError, match="malformed reply"):
        await agent_keys(fake.socket)

    replies[11] = _message(12, struct.pack(">I", 2) + ssh_string(b"x"))  # truncated list
    with pytest.raises(IdentityError, match="malformed key listing"):
        await agent_keys(fake.socket)

    replies[11] = _message(5)
    with pytest.raises(IdentityError, match="refused to list"):
        await agent_keys(fake.socket)


async def test_unreachable_agent_is_identity_error(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="cannot reach ssh-agent") as caught:
        await agent_keys(str(tmp_path / "nope.sock"))
    assert "SSH_AUTH_SOCK" in (caught.value.hint or "")


def test_mpint_encoding_rfc4251_examples() -> None:
    assert ssh_mpint(0) == bytes.fromhex("00000000")
    assert ssh_mpint(0x9A378F9B2E332A7) == bytes.fromhex("0000000809a378f9b2e332a7")
    assert ssh_mpint(0x80) == bytes.fromhex("000000020080")
    assert ssh_mpint(-1234) == bytes.fromhex("00000002fb2e")
    assert ssh_mpint(-0x1234) == bytes.fromhex("00000002edcc")
    assert ssh_mpint(-0xDEADBEEF) == bytes.fromhex("00000005ff21524111")
    for value in (0, 1, 0x7F, 0x80, 0xFF, 2**521 - 1, -1, -0x80, -0x81):
        assert WireReader(ssh_mpint(value)).mpint() == value


# -- key files ---------------------------------------------------------------------------------


class Prompts:
    """A passphrase callback that records its prompts."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.answer


def _never_prompt(prompt: str) -> str | None:
    raise AssertionError(f"unexpected passphrase prompt: {prompt}")


def _all_text(exc: BaseException) -> str:
    # Locals too: a traceback printer that shows them must not show a passphrase.
    shown = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return "".join(shown.format()) + repr(exc) + str(exc) + str(exc.args)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("encrypted")
    made = {
        "openssh": keygen(directory, "ed25519", name="id_openssh", passphrase="s3cret-pass"),
        "ecdsa": keygen(directory, "ecdsa384", name="id_ecdsa", passphrase="s3cret-pass"),
    }
    # Legacy PEM ("Proc-Type: 4,ENCRYPTED") and PKCS#8 ("ENCRYPTED PRIVATE KEY") encodings.
    legacy = directory / "id_rsa_pem"
    require("ssh-keygen")
    pem_args = ["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "s3cret-pass", "-C", "pem"]
    subprocess.run(
        ["ssh-keygen", "-q", *pem_args, "-f", str(legacy)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    made["pem"] = Key(legacy, legacy.with_name("id_rsa_pem.pub").read_text().strip())
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = directory / "id_pkcs8"
    pkcs8.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-pass"),
        )
    )
    line = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    made["pkcs8"] = Key(pkcs8, line)
    return made


@pytest.mark.parametrize("fmt", ["openssh", "ecdsa", "pem", "pkcs8"])
async def test_encrypted_key_asks_for_passphrase(encrypted: dict[str, Key], fmt: str) -> None:
    key = encrypted[fmt]
    prompts = Prompts("s3cret-pass")
    loaded = load_key_file(key.private, prompts)
    assert prompts.prompts == [f"Enter passphrase for {key.private}: "]
    assert loaded.public_blob == key.blob
    signature = await loaded.sign(b"data")
    assert verify_ssh_signature(key.line, b"data", signature)
    assert "s3cret-pass" not in repr(loaded)


@pytest.mark.parametrize("fmt", ["openssh", "ecdsa", "pem", "pkcs8"])
def test_wrong_passphrase_is_clear_and_not_echoed(encrypted: dict[str, Key], fmt: str) -> None:
    key = encrypted[fmt]
    with pytest.raises(IdentityError, match="wrong passphrase") as caught:
        load_key_file(key.private, Prompts("not-the-pass-" + "xyz"))
    assert str(key.private) in caught.value.message
    assert "ssh-add" in (caught.value.hint or "")
    text = _all_text(caught.value)
    assert "not-the-pass-xyz" not in text
    assert "s3cret-pass" not in text


@pytest.mark.parametrize("answer", [None, ""])
def test_encrypted_key_without_passphrase(encrypted: dict[str, Key], answer: str | None) -> None:
    key = encrypted["openssh"]
    for callback in (None, Prompts(answer)):
        with pytest.raises(IdentityError, match="is encrypted") as caught:
            load_key_file(key.private, callback)
        assert str(key.private) in caught.value.message
        assert f"ssh-add {key.private}" in (caught.value.hint or "")


def test_pub_path_uses_private_key_beside_it(keys: dict[str, Key]) -> None:
    key = load_key_file(keys["ecdsa256"].pub)
    assert key.public_blob == keys["ecdsa256"].blob
    assert key.comment == "ecdsa256 test key"


def test_key_file_errors(tmp_path: Path, keys: dict[str, Key]) -> None:
    lonely = tmp_path / "lonely.pub"
    lonely.write_text(keys["ed25519"].line + "\n")
    with pytest.raises(IdentityError, match="no private key beside"):
        load_key_file(lonely)

    with pytest.raises(IdentityError, match="does not exist"):
        load_key_file(tmp_path / "missing")

    mismatched = tmp_path / "mismatch"
    shutil.copy(keys["ed25519"].private, mismatched)
    (tmp_path / "mismatch.pub").write_text(keys["rsa"].line + "\n")
    with pytest.raises(IdentityError, match="does not match"):
        load_key_file(mismatched.with_name("mismatch.pub"))

    putty = tmp_path / "putty.ppk"
    putty.write_text("PuTTY-User-Key-File-3: ssh-ed25519\n")
    with pytest.raises(IdentityError, match="not an OpenSSH or PEM private key"):
        load_key_file(putty)

    public_as_private = tmp_path / "pubonly"
    public_as_private.write_text(keys["ed25519"].line + "\n")
    with pytest.raises(IdentityError, match="is a public key"):
        load_key_file(public_as_private)

    corrupt = tmp_path / "corrupt"
    corrupt.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(IdentityError, match="not a valid private key"):
        load_key_file(corrupt)

    ed448 = tmp_path / "ed448"
    from cryptography.hazmat.primitives.asymmetric import ed448 as ed448_mod

    ed448.write_bytes(
        ed448_mod.Ed448PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(IdentityError, match="unsupported key type"):
        load_key_file(ed448)

    k1 = tmp_path / "k1"
    k1.write_bytes(
        ec.generate_private_key(ec.SECP256K1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(IdentityError, match="secp256k1"):
        load_key_file(k1)


def test_security_key_file_is_refused(tmp_path: Path) -> None:
    sk_line = "sk-ssh-ed25519@openssh.com " + base64.b64encode(_sk_blob()).decode() + " yubikey"
    pub = tmp_path / "id_ed25519_sk.pub"
    pub.write_text(sk_line + "\n")
    with pytest.raises(IdentityError, match=SK_REASON):
        load_key_file(pub)


# -- candidate keys ----------------------------------------------------------------------------


async def _collect(
    environ: dict[str, str],
    home: Path,
    pubkey_file: Path | None = None,
    passphrase: Callable[[str], str | None] | None = _never_prompt,
) -> list[SSHKey | Skipped]:
    return [item async for item in candidate_keys(environ, home, pubkey_file, passphrase)]


def _label(item: SSHKey | Skipped) -> str:
    if isinstance(item, Skipped):
        return f"skipped {item.source}"
    return f"{item.source} {item.comment}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    return home


def test_default_key_files(home: Path, keys: dict[str, Key]) -> None:
    assert default_key_files(home) == []
    for name, kind in (("id_rsa", "rsa"), ("id_ed25519", "ed25519")):
        shutil.copy(keys[kind].private, home / ".ssh" / name)
    assert default_key_files(home) == [home / ".ssh/id_ed25519", home / ".ssh/id_rsa"]
    chosen = Path("/somewhere/key.pub")
    assert default_key_files(home, chosen) == [chosen]


async def test_candidates_agent_first_in_agent_order_then_files(
    fresh_agent: Agent, home: Path, tmp_path: Path
) -> None:
    ssh = home / ".ssh"
    agent_dir = tmp_path / "agent_keys"
    in_agent = [keygen(agent_dir, kind, name=f"a_{kind}") for kind in ("rsa", "ed25519")]
    fresh_agent.add(*in_agent)
    files = {
        "id_rsa": keygen(ssh, "rsa", name="id_rsa"),
        "id_ecdsa": keygen(ssh, "ecdsa256", name="id_ecdsa"),
    }
    # id_ed25519 is the agent's ed25519 key: offered once, by the agent.
    shutil.copy(in_agent[1].private, ssh / "id_ed25519")
    shutil.copy(in_agent[1].pub, ssh / "id_ed25519.pub")

    items = await _collect({"SSH_AUTH_SOCK": fresh_agent.socket}, home)
    assert [_label(i) for i in items] == [
        "ssh-agent rsa test key",
        "ssh-agent ed25519 test key",
        f"{ssh / 'id_ecdsa'} ecdsa256 test key",
        f"{ssh / 'id_rsa'} rsa test key",
    ]
    keys_only = [i for i in items if not isinstance(i, Skipped)]
    assert [k.public_blob for k in keys_only] == [
        in_agent[0].blob,
        in_agent[1].blob,
        files["id_ecdsa"].blob,
        files["id_rsa"].blob,
    ]


async def test_candidates_agent_down_is_skipped(
    tmp_path: Path, home: Path, keys: dict[str, Key]
) -> None:
    shutil.copy(keys["ed25519"].private, home / ".ssh" / "id_ed25519")
    items = await _collect({"SSH_AUTH_SOCK": str(tmp_path / "gone.sock")}, home)
    assert isinstance(items[0], Skipped)
    assert items[0].source == "ssh-agent"
    assert "cannot reach ssh-agent" in items[0].reason
    assert [_label(i) for i in items[1:]] == [f"{home / '.ssh/id_ed25519'} "]

    items = await _collect({}, home)
    assert items[0] == Skipped("ssh-agent", "SSH_AUTH_SOCK is not set")
    assert len(items) == 2


@pytest.mark.parametrize("given", ["pub", "private"])
async def test_pubkey_file_in_agent_uses_agent_copy_only(
    fresh_agent: Agent, home: Path, encrypted: dict[str, Key], keys: dict[str, Key], given: str
) -> None:
    key = encrypted["openssh"]
    # ssh-add itself needs the passphrase: feed it through SSH_ASKPASS.
    askpass = home / "askpass.sh"
    askpass.write_text("#!/bin/sh\necho s3cret-pass\n")
    askpass.chmod(0o700)
    await asyncio.to_thread(
        subprocess.run,
        ["ssh-add", "-q", str(key.private)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "SSH_AUTH_SOCK": fresh_agent.socket,
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",
        },
        timeout=30,
    )
    # A default key on disk must be ignored when --pubkey-file is given.
    shutil.copy(keys["rsa"].private, home / ".ssh" / "id_rsa")
    if given == "pub":
        pubkey_file = key.pub
    else:
        # Without a .pub beside it, the OpenSSH header still names the key (no decryption).
        pubkey_file = home / "copy_without_pub"
        shutil.copy(key.private, pubkey_file)
    items = await _collect({"SSH_AUTH_SOCK": fresh_agent.socket}, home, pubkey_file)
    assert [_label(i) for i in items] == ["ssh-agent ed25519 test key"]
    signer = items[0]
    assert not isinstance(signer, Skipped)
    assert verify_ssh_signature(key.line, b"d", await signer.sign(b"d"))


async def test_pubkey_file_not_in_agent_comes_after_agent_keys(
    agent: Agent, home: Path, tmp_path: Path, keys: dict[str, Key]
) -> None:
    extra = keygen(tmp_path / "extra", "ecdsa521", name="work_key")
    shutil.copy(keys["rsa"].private, home / ".ssh" / "id_rsa")  # ignored: --pubkey-file wins
    items = await _collect({"SSH_AUTH_SOCK": agent.socket}, home, extra.pub)
    assert [i.source for i in items] == ["ssh-agent"] * len(keys) + [str(extra.pub)]
    last = items[-1]
    assert not isinstance(last, Skipped)
    assert last.public_blob == extra.blob


async def test_candidates_skip_security_keys_and_certificates(
    fake_agent: Callable[[Handler], Awaitable[FakeAgent]], home: Path, keys: dict[str, Key]
) -> None:
    entries = ((_sk_blob(), "yubikey"), (_cert_blob(), "cert"), (keys["ed25519"].blob, "plain"))

    async def handler(request: bytes) -> bytes:
        return _identities(*entries)

    fake = await fake_agent(handler)
    items = await _collect({"SSH_AUTH_SOCK": fake.socket}, home)
    first, second, third, no_files = items
    assert isinstance(first, Skipped)
    assert first.source == "ssh-agent"
    assert SK_REASON in first.reason
    assert "yubikey" in first.reason
    assert fingerprint(_sk_blob()) in first.reason
    assert isinstance(second, Skipped)
    assert "certificates" in second.reason
    assert not isinstance(third, Skipped)
    assert third.comment == "plain"
    assert isinstance(no_files, Skipped)
    assert "id_ed25519" in no_files.reason


async def test_sk_key_object_is_skipped_through_candidates(
    fake_agent: Callable[[Handler], Awaitable[FakeAgent]], home: Path
) -> None:
    async def handler(request: bytes) -> bytes:
        return _identities((_sk_blob(), "sk"))

    fake = await fake_agent(handler)
    [listed] = await agent_keys(fake.socket)
    assert listed.key_type == "sk-ssh-ed25519@openssh.com"  # listed, but never offered
    items = await _collect({"SSH_AUTH_SOCK": fake.socket}, home)
    assert all(isinstance(i, Skipped) for i in items)


async def test_failing_file_key_is_skipped_with_reason(
    home: Path, encrypted: dict[str, Key], keys: dict[str, Key]
) -> None:
    shutil.copy(encrypted["openssh"].private, home / ".ssh" / "id_ed25519")
    shutil.copy(keys["rsa"].private, home / ".ssh" / "id_rsa")
    items = await _collect({}, home, passphrase=Prompts("wrong-one-123"))
    _, skipped, usable = items
    assert isinstance(skipped, Skipped)
    assert skipped.source == str(home / ".ssh/id_ed25519")
    assert "wrong passphrase" in skipped.reason
    assert "wrong-one-123" not in str(skipped)
    assert not isinstance(usable, Skipped)
    assert usable.public_blob == keys["rsa"].blob

    items = await _collect({}, home, passphrase=None)
    assert isinstance(items[1], Skipped)
    assert "is encrypted" in items[1].reason


async def test_candidates_are_lazy(
    home: Path, encrypted: dict[str, Key], keys: dict[str, Key]
) -> None:
    shutil.copy(keys["ed25519"].private, home / ".ssh" / "id_ed25519")
    shutil.copy(encrypted["openssh"].private, home / ".ssh" / "id_rsa")
    gen = aiter(candidate_keys({}, home, None, _never_prompt))
    assert isinstance(gen, AsyncGenerator)
    assert isinstance(await anext(gen), Skipped)  # no SSH_AUTH_SOCK
    first = await anext(gen)
    assert not isinstance(first, Skipped)
    await gen.aclose()  # stopping here never prompts for id_rsa


# -- parsing and verification negatives -------------------------------------------------------


def _replace_segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def test_tampered_payload_fails() -> None:
    claims = json.loads(VECTOR_PAYLOAD)
    claims["sub"] = "mallory"
    payload = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    parsed = parse_ssh_jwt(_replace_segment(VECTOR_JWT, 1, payload))
    assert parsed.claims["sub"] == "mallory"
    assert not verify_ssh_signature(VECTOR_PUBLIC, parsed.signing_input, parsed.signature)


@pytest.mark.parametrize("kind", list(KEY_KINDS))
async def test_tampered_signature_and_wrong_key_fail(keys: dict[str, Key], kind: str) -> None:
    key = keys[kind]
    token = await sign_jwt(load_key_file(key.private), VECTOR_CLAIMS)
    parsed = parse_ssh_jwt(token)
    assert verify_ssh_signature(key.line, parsed.signing_input, parsed.signature)
    for position in (0, len(parsed.signature) // 2, len(parsed.signature) - 1):
        flipped = bytearray(parsed.signature)
        flipped[position] ^= 0x01
        assert not verify_ssh_signature(key.line, parsed.signing_input, bytes(flipped))
    assert not verify_ssh_signature(key.line, parsed.signing_input, parsed.signature + b"\x00")
    assert not verify_ssh_signature(key.line, parsed.signing_input, parsed.signature[:-1])
    for other_kind, other in keys.items():
        if other_kind != kind:
            assert not verify_ssh_signature(other.line, parsed.signing_input, parsed.signature)
    assert not verify_ssh_signature(VECTOR_PUBLIC, parsed.signing_input, parsed.signature)


async def test_rsa_sha256_signature_is_not_accepted(keys: dict[str, Key]) -> None:
    private = serialization.load_ssh_private_key(keys["rsa"].private.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    sha256_sig = private.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    assert not verify_ssh_signature(keys["rsa"].line, b"data", sha256_sig)


def test_verify_never_raises_on_bad_keys() -> None:
    parsed = parse_ssh_jwt(VECTOR_JWT)
    sk_line = "sk-ssh-ed25519@openssh.com " + base64.b64encode(_sk_blob()).decode()
    for bad in (
        sk_line,
        "ssh-dss AAAAB3NzaC1kc3MAAAA=",
        "not a key",
        "",
        b"",
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x05short",
        _cert_blob(),
    ):
        assert verify_ssh_signature(bad, parsed.signing_input, parsed.signature) is False


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("a.b", "malformed"),
        ("a.b.c.d", "malformed"),
        ("", "malformed"),
        (_replace_segment(VECTOR_JWT, 0, "eyJhbGciOiJSUzI1NiJ9"), "algorithm"),  # RS256
        (_replace_segment(VECTOR_JWT, 0, _b64url(b'{"alg":"none"}')), "algorithm"),
        (_replace_segment(VECTOR_JWT, 0, _b64url(b'{"typ":"JWT"}')), "algorithm"),
        (_replace_segment(VECTOR_JWT, 0, _b64url(b'["SSH"]')), "malformed"),
        (_replace_segment(VECTOR_JWT, 0, _b64url(b"{not json")), "malformed"),
        (_replace_segment(VECTOR_JWT, 0, _b64url(b'{"alg":"SSH","alg":"SSH"}')), "malformed"),
        (_replace_segment(VECTOR_JWT, 1, _b64url(b"[1,2]")), "malformed"),
        (_replace_segment(VECTOR_JWT, 1, _b64url(b'{"exp":NaN}')), "malformed"),
        (_replace_segment(VECTOR_JWT, 1, VECTOR_JWT.split(".")[1] + "="), "malformed"),
        (_replace_segment(VECTOR_JWT, 1, "eyJ+"), "malformed"),
        (_replace_segment(VECTOR_JWT, 1, "abcde"), "malformed"),
        (_replace_segment(VECTOR_JWT, 2, "!!!!"), "malformed"),
        (_replace_segment(VECTOR_JWT, 2, ""), "malformed"),
        (VECTOR_JWT + "=", "malformed"),
        ("x" * 70000 + ".a.b", "malformed"),
    ],
)
def test_parse_ssh_jwt_rejects(token: str, reason: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        parse_ssh_jwt(token)
    assert caught.value.reason == reason
    assert isinstance(caught.value, IdentityError)


def test_signature_must_be_double_encoded() -> None:
    raw = parse_ssh_jwt(VECTOR_JWT).signature
    single = _replace_segment(VECTOR_JWT, 2, _b64url(raw))
    with pytest.raises(InvalidTokenError, match="double-encoded") as caught:
        parse_ssh_jwt(single)
    assert caught.value.reason == "malformed"
    unpadded = _replace_segment(VECTOR_JWT, 2, _b64url(base64.b64encode(raw).rstrip(b"=")))
    with pytest.raises(InvalidTokenError, match="double-encoded"):
        parse_ssh_jwt(unpadded)
    urlsafe_inner = base64.urlsafe_b64encode(b"\xfb\xff" * 32)
    with pytest.raises(InvalidTokenError, match="double-encoded"):
        parse_ssh_jwt(_replace_segment(VECTOR_JWT, 2, _b64url(urlsafe_inner)))


def test_parsed_token_is_plain_data() -> None:
    parsed = parse_ssh_jwt(VECTOR_JWT)
    assert isinstance(parsed, ParsedSSHJWT)
    with pytest.raises(AttributeError):
        parsed.signature = b""  # type: ignore[misc]


# -- authorized_keys lines ---------------------------------------------------------------------


def test_parse_authorized_key(keys: dict[str, Key]) -> None:
    for key in keys.values():
        key_type, blob, comment = parse_authorized_key(key.line)
        assert key_type == key.line.split()[0]
        assert blob == key.blob
        assert comment == key.line.split(None, 2)[2]
    assert parse_authorized_key(VECTOR_PUBLIC) == ("ssh-ed25519", VECTOR_PUBLIC_BLOB, "")
    assert parse_authorized_key(f"  {VECTOR_PUBLIC}   alice  at  laptop \n")[2] == (
        "alice  at  laptop"
    )


def _ecdsa_blob_with_curve(curve_name: bytes) -> str:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    blob = ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(curve_name) + ssh_string(point)
    return "ecdsa-sha2-nistp256 " + base64.b64encode(blob).decode()


def _small_rsa_line() -> str:
    blob = ssh_string(b"ssh-rsa") + ssh_mpint(65537) + ssh_mpint((1 << 511) + 1)
    return "ssh-rsa " + base64.b64encode(blob).decode()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty"),
        ("# alice", "comment"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key"),
        (f'from="10.0.0.0/8",no-pty {VECTOR_PUBLIC}', "options"),
        ("ssh-ed25519", "no key data"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("hello world", "does not start with a key type"),
        (VECTOR_PUBLIC.replace("ssh-ed25519", "ssh-rsa", 1), "says ssh-rsa but its data"),
        ("ssh-ed25519 " + base64.b64encode(VECTOR_PUBLIC_BLOB[:-1]).decode(), "malformed"),
        ("ssh-ed25519 " + base64.b64encode(VECTOR_PUBLIC_BLOB + b"x").decode(), "malformed"),
        (_ecdsa_blob_with_curve(b"nistp384"), "curve name"),
        (_small_rsa_line(), "RSA modulus"),
    ],
)
def test_parse_authorized_key_errors(line: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        parse_authorized_key(line)
