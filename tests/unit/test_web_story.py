"""The story page's pieces without a server: references taken apart, the next step's command."""

from __future__ import annotations

import shlex

import pytest

from imgctl.web._story import _steps, command_server, promote_command, split_reference

DIGEST = "sha256:" + "c" * 64
ORDER = ["ci", "dev", "staging", "prod"]


@pytest.mark.parametrize(
    ("reference", "tag", "digest"),
    [
        ("shop/web:1.0.0", "1.0.0", None),
        (f"shop/web@{DIGEST}", None, DIGEST),
        (f"shop/web:1.0.0@{DIGEST}", "1.0.0", DIGEST),
        ("localhost/shop/web", None, None),
        (" shop/web:v2 ", "v2", None),
        ("shop/web:", None, None),
    ],
)
def test_split_reference(reference: str, tag: str | None, digest: str | None) -> None:
    assert split_reference(reference) == (tag, digest)


def test_promote_command_names_tag_and_digest_and_quotes_what_needs_it() -> None:
    command = promote_command("shop/web", DIGEST, "1.0.0", "staging", "prod", "10.0.0.5:9999")
    assert (
        command
        == f"imgctl promote shop/web:1.0.0@{DIGEST} --source staging -d prod -s 10.0.0.5:9999"
    )
    assert promote_command("shop/web", DIGEST, None, "ci", "dev") == (
        f"imgctl promote shop/web@{DIGEST} --source ci -d dev"
    )
    # Environment names are checked words already; the quoting is there for anything else.
    odd = promote_command("shop/web", DIGEST, None, "ci", "dev env")
    assert shlex.split(odd)[-1] == "dev env"


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("127.0.0.1:9999", "127.0.0.1:9999"),
        ("imgctl.example.com:443", "imgctl.example.com:443"),
        ("0.0.0.0:9999", None),
        ("[::]:9999", None),
        (":9999", None),
        (None, None),
        ("", None),
    ],
)
def test_command_server_only_names_an_address_a_client_can_dial(
    address: str | None, shown: str | None
) -> None:
    assert command_server(address) == shown


def test_steps_start_from_the_furthest_environment_with_its_tag() -> None:
    placed = {DIGEST: {"dev": ("1.0.0",), "staging": ("1.0.1", "stable"), "ci": ()}}
    [step] = _steps("shop/web", [DIGEST], placed, ORDER, ORDER, None)
    assert step.environments == ("ci", "dev", "staging")
    assert step.tags == ("1.0.1", "stable", "1.0.0")
    assert step.next_environment == "prod"
    assert step.command == f"imgctl promote shop/web:1.0.1@{DIGEST} --source staging -d prod"
    assert not step.final


def test_steps_without_a_tag_left_promote_by_digest_alone() -> None:
    # Its tag moved on to a newer digest in staging: the command must not move it back.
    [step] = _steps("shop/web", [DIGEST], {DIGEST: {"staging": ()}}, ORDER, ORDER, "h:1")
    assert step.command == f"imgctl promote shop/web@{DIGEST} --source staging -d prod -s h:1"


def test_steps_in_the_last_environment_or_before_one_the_reader_may_not_read() -> None:
    [step] = _steps("shop/web", [DIGEST], {DIGEST: {"prod": ("1",)}}, ORDER, ORDER, None)
    assert (step.next_environment, step.command, step.final) == (None, None, True)
    readable = ["ci", "dev", "staging"]
    [step] = _steps("shop/web", [DIGEST], {DIGEST: {"staging": ("1",)}}, ORDER, readable, None)
    assert (step.next_environment, step.command, step.final) == (None, None, False)
    # A digest only seen in refused attempts (pinned in their reference): never promoted.
    [step] = _steps("shop/web", [DIGEST], {}, ORDER, ORDER, None)
    assert (step.environments, step.command, step.final) == ((), None, False)
    # An environment the pipeline does not know (removed from the configuration) is ignored.
    [step] = _steps("shop/web", [DIGEST], {DIGEST: {"qa": ("1",)}}, ORDER, ORDER, None)
    assert (step.environments, step.command) == ((), None)
