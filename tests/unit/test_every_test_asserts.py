"""Every test can fail: none is without an assertion (tests/support/assertscan.py).

A test with no ``assert``, no ``pytest.raises`` and no helper that asserts passes whatever the
code does; this scan makes CI fail on a new one (issue 23).
"""

from __future__ import annotations

from pathlib import Path

from ..support.assertscan import silent_tests

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_is_without_an_assertion() -> None:
    silent = silent_tests(TESTS)
    assert silent == [], "tests that assert nothing:\n" + "\n".join(map(str, silent))


def test_the_scan_finds_what_asserts_nothing() -> None:
    module = """
import pytest
from imgctl.oci import Digest

def checks(value):
    assert value

def checks_through_another(value):
    checks(value)

def only_returns(value):
    return bool(value)

class Fixture:
    def verify(self):
        raise AssertionError("no")

    def quiet(self):
        return True

def test_nothing():
    Digest.of(b"abc")

def test_library_call_only():
    Digest.of(b"abc").verify(b"abc")

def test_helper_that_does_not_assert():
    only_returns(1)

def test_unresolved_method():
    Fixture().quiet()

def test_assert():
    assert Digest.of(b"a")

def test_raises():
    with pytest.raises(ValueError):
        int("x")

def test_helper():
    checks_through_another(1)

def test_annotated(fixture: Fixture):
    fixture.verify()

def test_annotated_quiet(fixture: Fixture):
    fixture.quiet()

class TestGroup:
    def helper(self):
        pytest.fail("x")

    def test_through_self(self):
        self.helper()

    def test_nothing_in_a_class(self):
        pass
"""
    found = {
        s.name
        for s in silent_tests(TESTS, [(Path("unit/test_zz_scan_example.py"), module)])
        if s.path == Path("unit/test_zz_scan_example.py")
    }
    assert found == {
        "test_nothing",
        "test_library_call_only",
        "test_helper_that_does_not_assert",
        "test_unresolved_method",
        "test_annotated_quiet",
        "TestGroup.test_nothing_in_a_class",
    }


def test_every_stub_http_server_keeps_its_handlers_errors() -> None:
    # A plain http.server server prints a handler's error and serves on: the test that uses
    # it cannot fail by it (issue 23 item 1). Stub servers are tests/support/httpd.py's.
    import ast

    plain = {"HTTPServer", "ThreadingHTTPServer"}
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == TESTS / "support" / "httpd.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Call):
                names.append(getattr(node.func, "id", getattr(node.func, "attr", "")))
            if isinstance(node, ast.ClassDef):
                names += [getattr(base, "id", getattr(base, "attr", "")) for base in node.bases]
            found += [f"{path.relative_to(TESTS)}:{node.lineno}" for name in names if name in plain]
    assert found == [], "use tests/support/httpd.CheckedHTTPServer:\n" + "\n".join(found)
