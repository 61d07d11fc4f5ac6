"""The two maps from errors: to exit codes (``cli._exit``) and to gRPC status (``server._status``).

Both are checked against the tables the documentation gives users (README "Exit codes",
docs/server.md "gRPC status codes and exit codes"), and the source is checked for the two ways
the maps used to be bypassed: gRPC status names carried by domain errors, and error classes
recognised by the text of their name.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import grpc
import pytest

from imgctl import errors
from imgctl.cli._exit import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_UNVERIFIED,
    exit_code,
)
from imgctl.cli._exit import status_name as rpc_status_name
from imgctl.errors import PromotionError
from imgctl.server._status import STATUS_NAMES, status_name
from imgctl.server.core import _result

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "imgctl"

PROMOTION_KINDS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, PromotionError) and cls is not PromotionError
    ),
    key=lambda cls: cls.__name__,
)


def rpc_error(name: str) -> grpc.aio.AioRpcError:
    """What the client holds when the server answered with status ``name``."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode[name], grpc.aio.Metadata(), grpc.aio.Metadata(), details="refused"
    )


def table(text: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after ``heading`` (header and rule left out)."""
    after = text[text.index(heading) :]
    lines = after.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def server_md_rows() -> list[tuple[str, str, int]]:
    """(gRPC status, audit result, exit status) of docs/server.md's table."""
    text = (ROOT / "docs" / "server.md").read_text()
    rows = table(text, "## gRPC status codes and exit codes")
    return [(row[0], row[2].strip("`"), int(row[3])) for row in rows]


def readme_rows() -> list[tuple[int, list[str]]]:
    """(exit code, gRPC statuses) of the README's exit-code table."""
    text = (ROOT / "README.md").read_text()
    rows = table(text, "**Exit codes**")
    return [(int(row[0]), re.findall(r"\b[A-Z][A-Z_]+\b", row[2])) for row in rows]


def test_every_promotion_error_kind_has_one_status() -> None:
    mapped = [kind for kind, _ in STATUS_NAMES]
    assert sorted(mapped, key=lambda cls: cls.__name__) == PROMOTION_KINDS
    names = [name for _, name in STATUS_NAMES]
    assert len(set(names)) == len(names)
    for name in names:
        assert name in grpc.StatusCode.__members__
    assert status_name(PromotionError("copying failed")) == "INTERNAL"


@pytest.mark.parametrize("kind", PROMOTION_KINDS, ids=lambda cls: cls.__name__)
def test_a_kind_exits_the_same_met_locally_or_from_the_server(kind: type[PromotionError]) -> None:
    error = kind("refused", hint="do this")
    assert exit_code(error) == exit_code(rpc_error(status_name(error)))


def test_the_tables_agree_with_docs_server_md() -> None:
    rows = server_md_rows()
    documented = {status for status, _, _ in rows}
    assert {name for _, name in STATUS_NAMES} | {"INTERNAL"} <= documented
    by_status = {name: kind for kind, name in STATUS_NAMES}
    for status, result, code in rows:
        if status == "OK":
            assert (result, code) == ("succeeded", 0)
            continue
        assert exit_code(rpc_error(status)) == code, status
        error = by_status.get(status, PromotionError)("refused")
        assert status_name(error) == status
        assert _result(error) == result, status
        assert exit_code(error) == code, status


def test_the_exit_table_agrees_with_the_readme() -> None:
    rows = readme_rows()
    # The one table for every command: 7 (nothing verified) and 130 (Ctrl-C) have no status.
    assert [code for code, _ in rows] == [0, 1, 2, 3, 4, 5, 6, EXIT_UNVERIFIED, EXIT_INTERRUPTED]
    assert [statuses for code, statuses in rows if code > EXIT_UNAVAILABLE] == [[], []]
    for code, statuses in rows:
        for status in statuses:
            if status == "OK":
                assert code == 0
            else:
                assert exit_code(rpc_error(status)) == code, status


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.UsageError("bad flag"), 2),
        (errors.ManifestError("bad manifest"), 2),
        (errors.InvalidSpaError("bad spa", part="name"), 2),
        (errors.InvalidReferenceError("A/b", "repository", "must be lowercase"), 2),
        (errors.IdentityError("no usable SSH key"), 3),
        (errors.InvalidTokenError("expired", "the token expired"), 3),
        (errors.AuthenticationError("registry refused", status=401), 3),
        (errors.PermissionDeniedError("registry denied", status=403), 4),
        (errors.NotFoundError("manifest unknown", status=404), 5),
        (errors.SpaNotFoundError("no such version", bucket="b"), 5),
        (errors.TransportError("connection refused"), 6),
        (errors.KeyRefError("cosign.key: wrong password"), 2),
        (errors.SignatureError("no signature verified"), 7),
        (errors.RegistryError("500", status=500), 1),
        (errors.StoreError("database down"), 1),
        (errors.CredentialError("bad entry"), 1),
        (RuntimeError("unexpected"), 1),
        (KeyboardInterrupt(), 130),
        (rpc_error("INTERNAL"), 1),
        (rpc_error("ABORTED"), 1),
        (rpc_error("FAILED_PRECONDITION"), 1),
        (rpc_error("DEADLINE_EXCEEDED"), 6),
    ],
    ids=repr,
)
def test_exit_codes_by_class(error: BaseException, code: int) -> None:
    assert exit_code(error) == code


def test_status_name_of_what_is_no_rpc_error() -> None:
    assert rpc_status_name(errors.RegistryError("x", code="MANIFEST_UNKNOWN")) is None
    assert rpc_status_name(rpc_error("NOT_FOUND")) == "NOT_FOUND"
    assert exit_code(errors.SpaS3Error("x", code="NOT_FOUND")) == EXIT_FAILED


def _sources() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if "v1" not in path.relative_to(SRC).parts
    ]


def test_only_the_server_and_the_cli_name_grpc_statuses() -> None:
    # OK and UNKNOWN are ordinary words elsewhere (distribution's error code UNKNOWN).
    statuses = set(grpc.StatusCode.__members__) - {"OK", "UNKNOWN"}
    found = [
        f"{path.relative_to(SRC)}:{node.lineno}: {node.value}"
        for path, tree in _sources()
        if path.relative_to(SRC).parts[0] not in ("server", "cli")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in statuses
    ]
    assert found == []


def test_no_class_is_recognised_by_its_name() -> None:
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            names = [
                sub
                for sub in ast.walk(node)
                if isinstance(sub, ast.Attribute) and sub.attr in ("__name__", "__qualname__")
            ]
            if not names:
                continue
            compares = isinstance(node, ast.Compare) and any(
                part in names or any(sub in names for sub in ast.walk(part))
                for part in [node.left, *node.comparators]
            )
            matches = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("endswith", "startswith", "match", "fullmatch", "search")
                and any(sub in names for sub in ast.walk(node.func.value))
            )
            if compares or matches:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []
