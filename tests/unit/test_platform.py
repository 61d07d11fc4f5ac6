"""``os/arch[/variant]`` parsing and matching for ``imgctl copy --platform``."""

from __future__ import annotations

import pytest

from imgctl.errors import UsageError
from imgctl.oci import Platform
from imgctl.oci.platform import matches, parse_platform


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("windows/amd64", Platform("windows", "amd64")),
        ("linux/s390x", Platform("linux", "s390x")),
    ],
)
def test_parse_accepts_os_arch_and_variant(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected
    assert str(parse_platform(text)) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("linux", "1 part(s)"),
        ("", "1 part(s)"),
        ("linux/", "empty architecture"),
        ("/amd64", "empty os"),
        ("linux/arm/", "empty variant"),
        ("a/b/c/d", "4 part(s)"),
        ("linux//v7", "empty architecture"),
        ("linux/amd 64", "'amd 64' is not a platform name"),
        ("linux/amd64\n", "is not a platform name"),
        ("linux/../x", "is not a platform name"),
        ("linux/" + "a" * 300, "at most 200"),
    ],
)
def test_parse_refuses_bad_input_with_a_specific_message(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_platform(text)
    assert problem in str(caught.value)
    assert "os/arch" in str(caught.value)  # the hint says what to write


@pytest.mark.parametrize(
    ("wanted", "have", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64"), True),
        ("linux/arm64", Platform("linux", "arm64", "v8"), True),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8"), True),
        ("linux/arm64/v8", Platform("linux", "arm64"), False),
        ("linux/arm/v7", Platform("linux", "arm", "v6"), False),
        ("linux/amd64", Platform("linux", "arm64"), False),
        ("linux/amd64", Platform("windows", "amd64"), False),
    ],
)
def test_matches(wanted: str, have: Platform, expected: bool) -> None:
    assert matches(parse_platform(wanted), have) is expected
