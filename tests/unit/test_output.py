"""Machine output's rules in one place: yaml wherever json, numbers as numbers, RFC 3339 times.

The commands' own documents are checked end to end in tests/integration/test_machine_output.py
(and test_server.py for the server's commands); here the sweep every new command must pass, and
the helpers they print with.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
import yaml

from imgctl.cli._app import COMMANDS, app
from imgctl.cli._output import camel_keys, proto_document, rfc3339, yaml_text
from imgctl.v1 import imgctl_pb2 as pb

from ..support.machine import check_document


def _walk(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found.extend(_walk(sub, (*path, name)))
    return found


def _with_output() -> list[tuple[tuple[str, ...], Any]]:
    """Every command (and group) of the tree having an --output/-o option, and that option."""
    root = typer.main.get_command(app)
    assert set(COMMANDS_NAMES) <= set(root.commands)  # type: ignore[attr-defined]
    found = []
    for path, command in _walk(root, ()):
        for param in command.params:
            if "--output" in getattr(param, "opts", ()):
                found.append((path, param))
    return found


COMMANDS_NAMES = [entry.name for entry in COMMANDS]
OUTPUT_OPTIONS = _with_output()


def test_the_sweep_finds_the_commands_with_output() -> None:
    # A broken walk would make the sweep below vacuous: these must be among what it found.
    paths = {path for path, _ in OUTPUT_OPTIONS}
    expected = {
        ("copy",),
        ("ls",),
        ("promote",),
        ("auth-check",),
        ("auth", "explain"),
        ("sign",),
        ("verify",),
        ("attest",),
        ("attestations",),
        ("generate-key-pair",),
        ("cip",),
        ("cip", "replicate-signatures"),
        ("catalog", "ls"),
        ("catalog", "get"),
        ("catalog", "rm"),
        ("catalog", "import"),
        ("audit", "ls"),
        ("scan",),
        ("scan", "status"),
    }
    assert expected <= paths, expected - paths


@pytest.mark.parametrize(
    ("path", "option"), OUTPUT_OPTIONS, ids=[" ".join(path) for path, _ in OUTPUT_OPTIONS]
)
def test_every_output_option_offers_json_and_yaml(path: tuple[str, ...], option: Any) -> None:
    assert "-o" in option.opts, f"imgctl {' '.join(path)}: --output without -o"
    choices = list(option.type.choices)
    assert "json" in choices
    assert "yaml" in choices, f"imgctl {' '.join(path)} -o: {choices} (no yaml)"


def test_a_protobuf_answer_keeps_its_numbers_and_gives_rfc3339_times() -> None:
    answer = pb.AuthCheckResponse(
        subject="alice", groups=["ops"], expires_at=1_796_734_800, destinations=["prod"]
    )
    document = proto_document(answer, times={"expires_at": "expiresAt"})
    assert document == {
        "subject": "alice",
        "email": "",
        "name": "",
        "groups": ["ops"],
        "expiresAt": "2026-12-08T13:00:00Z",
        "destinations": ["prod"],
    }
    check_document(document, times=["expiresAt"])
    result = pb.PromoteResponse(bytes_copied=(1 << 40) + 1, duration_ms=12, blobs_copied=3)
    promoted = proto_document(result)
    check_document(promoted, ints=["bytesCopied", "durationMs", "blobsCopied"])
    assert promoted["bytesCopied"] == (1 << 40) + 1
    assert "signed" not in promoted  # optional and unset: the server does not sign
    nested = proto_document(pb.PromoteEvent(progress=pb.PromoteProgress(bytes_copied=7, done=1)))
    assert nested == {"progress": {"bytesCopied": 7, "done": 1, "total": 0}}
    # A token without expiry (0) has no time, not 1970.
    assert (
        proto_document(pb.AuthCheckResponse(), times={"expires_at": "expiresAt"})["expiresAt"]
        is None
    )


def test_yaml_is_the_json_document() -> None:
    shared = {"tags": ["v1", "yes", "on", "null", "0x10", "1e3", "2026-12-07T13:00:00Z"]}
    document = {
        "zeta": 1,  # keys keep their order, not sorted
        "alpha": [shared, shared],  # printed twice, not as an alias
        "bytes": (1 << 63) - 1,
        "ratio": 0.1,
        "none": None,
        "empty": {},
        "text": "a: b\n  indented # not a comment\n",
        "unicode": "café ✓",
    }
    text = yaml_text(document)
    assert "&id" not in text
    assert "*id" not in text
    assert list(yaml.safe_load(text)) == list(document)
    assert yaml.safe_load(text) == json.loads(json.dumps(document))


def test_times_and_keys() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_796_734_800.5) == "2026-12-08T13:00:00.500000Z"
    page = {"next_cursor": None, "events": [{"request_id": "r", "source_env": "dev"}]}
    assert camel_keys(page) == {
        "nextCursor": None,
        "events": [{"requestId": "r", "sourceEnv": "dev"}],
    }


def test_the_documented_example_is_what_auth_check_prints() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    section = text.split("## Machine-readable output", 1)[1].split("\n## ", 1)[0]
    as_json = section.split("```json\n", 1)[1].split("```", 1)[0]
    as_yaml = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    document = json.loads(as_json)
    check_document(document, times=["expiresAt"])
    # What the command prints for such an answer, byte for byte, in both syntaxes.
    answer = pb.AuthCheckResponse(
        subject=document["subject"],
        email=document["email"],
        name=document["name"],
        groups=document["groups"],
        expires_at=1_796_734_800,
        destinations=document["destinations"],
    )
    printed = proto_document(answer, times={"expires_at": "expiresAt"})
    assert json.dumps(printed, indent=2) + "\n" == as_json
    assert yaml_text(printed) == as_yaml
