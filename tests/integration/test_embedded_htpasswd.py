"""The embedded registry's htpasswd check, differential against Debian's docker-registry.

Both servers read the same htpasswd file and get the same ``Authorization`` headers; the
embedded registry must let in exactly whom docker-registry lets in. docker-registry checks
passwords with Go's ``bcrypt.CompareHashAndPassword``, which uses at most 72 bytes of a password
(bcrypt's key schedule reads no more; golang.org/x/crypto 0.5.0 made only
``GenerateFromPassword`` refuse longer ones), so hashes that older tools wrote for long
passwords keep working there. Every answer is 200 or 401, never a 500, and the password never
reaches the log.
"""

from __future__ import annotations

import base64
import http.client
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bcrypt
import pytest

from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.registry import Registry

_ROUNDS = 4  # the cheapest cost: the test is about which passwords match, not about cost


def _hash(password: bytes) -> str:
    # What every bcrypt tool before the 72-byte refusal stored: the hash of the first 72 bytes
    # (Apache's htpasswd -B and Go's GenerateFromPassword before x/crypto 0.5.0 did exactly this).
    return bcrypt.hashpw(password[:72], bcrypt.gensalt(rounds=_ROUNDS)).decode()


def _ascii(length: int, seed: str) -> bytes:
    return (seed * length)[:length].encode()


# user -> the password its htpasswd entry was made from
USERS: dict[str, bytes] = {
    "u71": _ascii(71, "seventy-one bytes exactly? "),
    "u72": _ascii(72, "seventy-two bytes, the whole of bcrypt's key "),
    "u73": _ascii(73, "seventy-three bytes: one more than bcrypt reads "),
    "u100": _ascii(100, "a hundred bytes, the kind a password manager makes "),
    # 1 + 3 * 30 = 91 bytes: the 72-byte boundary cuts the 24th euro sign in half.
    "euro": ("a" + "€" * 30).encode(),
    "nul": b"ab\0cd",  # Go hashes every byte, NULs included
    "short": b"ab",  # bcrypt repeats a short key (and its NUL) to fill 72 bytes
    "latin1": bytes(range(0xA0, 0xA0 + 80)),  # not UTF-8 at all
}


def variants(password: bytes) -> dict[str, bytes]:
    """The correct password and its near misses, around the 72-byte boundary."""
    out = {
        "correct": password,
        "plus x": password + b"x",
        "plus NUL": password + b"\0",
        "first byte changed": bytes([password[0] ^ 1]) + password[1:],
        "last byte changed": password[:-1] + bytes([password[-1] ^ 1]),
        "first 71": password[:71],
        "first 72": password[:72],
        "to 100 with x": password + b"x" * max(0, 100 - len(password)),
        "empty": b"",
    }
    if len(password) > 72:
        out["byte 73 changed"] = password[:72] + bytes([password[72] ^ 1]) + password[73:]
        out["byte 72 changed"] = password[:71] + bytes([password[71] ^ 1]) + password[72:]
    # bcrypt's key is the password and a NUL, repeated: this spelling of a short password
    # fills the 72 bytes identically.
    cycled = (password + b"\0") * (72 // (len(password) + 1) + 1)
    out["cycled to 72"] = cycled[:72]
    return out


def basic(user: bytes, password: bytes) -> str:
    return "Basic " + base64.b64encode(user + b":" + password).decode()


def status(host: str, authorization: str | None) -> int:
    connection = http.client.HTTPConnection(host, timeout=20)
    try:
        connection.putrequest("GET", "/v2/", skip_accept_encoding=True)
        if authorization is not None:
            connection.putheader("Authorization", authorization)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@dataclass
class Pair:
    """docker-registry and the embedded registry, started on the same htpasswd file."""

    reference: Registry
    embedded: EmbeddedRegistry

    def answers(self, authorization: str | None) -> tuple[int, int]:
        return status(self.reference.host, authorization), status(self.embedded.host, authorization)

    def differences(self, cases: Iterable[tuple[str, str | None]]) -> list[str]:
        wrong = []
        for label, authorization in cases:
            reference, embedded = self.answers(authorization)
            assert reference in (200, 401), (label, reference)
            assert embedded in (200, 401), (label, embedded)  # never a 500
            if reference != embedded:
                wrong.append(f"{label}: docker-registry {reference}, embedded {embedded}")
        return wrong


PairFactory = Callable[[str, str], Pair]


@pytest.fixture(scope="module")
def pair_for(
    registries: Callable[..., Registry],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> PairFactory:
    counter = itertools.count()

    def start(name: str, text: str) -> Pair:
        directory = tmp_path_factory.mktemp(f"htpasswd-{name}-{next(counter)}")
        path = directory / "htpasswd"
        path.write_bytes(text.encode())
        reference = registries(htpasswd=path)
        embedded = start_embedded(directory / "root", request.addfinalizer, htpasswd=path)
        return Pair(reference, embedded)

    return start


@pytest.fixture(scope="module")
def pair(pair_for: PairFactory) -> Pair:
    lines = [f"{user}:{_hash(password)}" for user, password in USERS.items()]
    # Two users whose name and password could be confused if a cache joined them with a NUL.
    lines += [f"a\0b:{_hash(b'pw')}", f"a:{_hash(b'other')}"]
    # Cost 3 is below bcrypt's minimum: Go refuses the hash at every check, Python raises.
    lines.append(f"badcost:$2b$03${_hash(b'pw')[7:]}")
    return pair_for("passwords", "\n".join(lines) + "\n")


def test_passwords_around_72_bytes_match_docker_registry(pair: Pair) -> None:
    cases = [
        (f"{user} {label} ({len(attempt)} bytes)", basic(user.encode(), attempt))
        for user, password in USERS.items()
        for label, attempt in variants(password).items()
    ]
    differences = pair.differences(cases)
    assert differences == [], "\n".join(differences)
    # What docker-registry did, checked by hand, so that agreeing means what we think it means.
    for user, password in USERS.items():
        assert pair.answers(basic(user.encode(), password)) == (200, 200), user
        assert pair.answers(basic(user.encode(), password + b"x")) == (
            (200, 200) if len(password) >= 72 else (401, 401)
        ), user
    for user in ("u73", "u100", "euro", "latin1"):
        tail = variants(USERS[user])
        assert pair.answers(basic(user.encode(), tail["byte 73 changed"])) == (200, 200)
        assert pair.answers(basic(user.encode(), tail["byte 72 changed"])) == (401, 401)


def test_password_never_logged(pair: Pair) -> None:
    for user, password in USERS.items():
        pair.answers(basic(user.encode(), password))
        pair.answers(basic(user.encode(), password + b"wrong"))
    output = pair.embedded.output()
    assert "Traceback" not in output
    for password in USERS.values():
        for fragment in (password[:12], base64.b64encode(b":" + password)[:16]):
            assert fragment.decode("latin-1") not in output


def test_remembered_logins_are_not_confused_across_users(pair: Pair) -> None:
    # The embedded registry remembers successful checks; "a\0b" with "pw" must not let in
    # "a" with "b\0pw".
    assert pair.answers(basic(b"a\0b", b"pw")) == (200, 200)
    assert pair.differences([("a / b\\0pw", basic(b"a", b"b\0pw"))]) == []
    assert pair.answers(basic(b"a", b"b\0pw")) == (401, 401)


def test_a_hash_bcrypt_cannot_use_lets_nobody_in(pair: Pair) -> None:
    for password in (b"pw", b"", b"x" * 100):
        assert pair.answers(basic(b"badcost", password)) == (401, 401)


def test_authorization_header_spellings_match_docker_registry(pair: Pair) -> None:
    token = base64.b64encode(b"u71:" + USERS["u71"]).decode()
    cases: list[tuple[str, str | None]] = [
        ("no header", None),
        ("lower-case scheme", f"basic {token}"),
        ("upper-case scheme", f"BASIC {token}"),
        ("two spaces", f"Basic  {token}"),
        ("tab", f"Basic\t{token}"),
        ("no padding", f"Basic {token.rstrip('=')}"),
        ("bearer", f"Bearer {token}"),
        ("no colon", "Basic " + base64.b64encode(b"u71").decode()),
        ("empty user", basic(b"", USERS["u71"])),
        ("not base64", "Basic !!!!"),
    ]
    assert pair.differences(cases) == []


def test_htpasswd_lines_are_split_as_docker_registry_splits_them(pair_for: PairFactory) -> None:
    # Go reads the file line by line on "\n" only (dropping a "\r" before it) and trims Unicode
    # white space; Python's splitlines() would also break lines at U+2028, \x1c, \x0c...
    users = {
        "line\u2028sep": b"pw-one",
        "file\x1csep": b"pw-two",
        "form\x0cfeed": b"pw-three",
        "crlf": b"pw-four",
    }
    text = "".join(
        f"{user}:{_hash(password)}" + ("\r\n" if user == "crlf" else "\n")
        for user, password in users.items()
    )
    both = pair_for("lines", "  # a comment\n\n" + text)
    cases = [
        (repr(name), basic(name.encode(), password))
        for user, password in users.items()
        for name in (user, *user.replace("\u2028", "\n").replace("\x1c", "\n").split("\n"))
    ]
    assert both.differences(cases) == []
    for user, password in users.items():
        assert both.answers(basic(user.encode(), password)) == (200, 200), repr(user)
