"""The file-change detector shared by the tokens file and the watches file (_internal.filechanges).

Every way a file is replaced in practice must be noticed: an edit in place, an atomic rename,
a Kubernetes ConfigMap/Secret update (the ``..data`` symlink swapped), deletion and re-creation,
and a rewrite of the same size whose modification time was put back (``cp -p``, ``tar x``,
``touch -r``), which size and mtime alone cannot tell from no change at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from imgctl._internal.filechanges import FileChanges
from imgctl.catalog.tokens import TokenFile


def _in_place(path: Path, text: str) -> None:
    with path.open("w") as handle:  # same inode: truncated and rewritten
        handle.write(text)


def _renamed(path: Path, text: str) -> None:
    new = path.with_name(path.name + ".tmp")
    new.write_text(text)
    os.replace(new, path)


def _mtime_restored(path: Path, text: str) -> None:
    before = path.stat()
    _in_place(path, text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def _symlink_swap(path: Path, text: str) -> None:
    # What the kubelet does: FILE -> ..data/FILE, ..data -> ..<timestamp>/; an update writes a
    # new timestamped directory and renames a new ..data symlink over the old one.
    mount = path.parent
    target = (mount / "..data").resolve()
    second = mount / f"{target.name}.next"
    second.mkdir()
    (second / path.name).write_text(text)
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    for child in target.iterdir():
        child.unlink()
    target.rmdir()


CHANGES: dict[str, Callable[[Path, str], None]] = {
    "in place": _in_place,
    "atomic rename": _renamed,
    "same size, mtime put back": _mtime_restored,
    "symlink swap": _symlink_swap,
}


def _file(tmp_path: Path, how: str, text: str) -> Path:
    if how != "symlink swap":
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path
    mount = tmp_path / "configmap"
    first = mount / "..2024_01_01_00_00_00.1"
    first.mkdir(parents=True)
    (first / "config.yaml").write_text(text)
    (mount / "..data").symlink_to(first.name)
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    return mount / "config.yaml"


@pytest.mark.parametrize("how", CHANGES)
def test_every_kind_of_change_is_reported_once(tmp_path: Path, how: str) -> None:
    path = _file(tmp_path, how, "version: 1\n")
    changes = FileChanges(path, interval=0.0)
    assert not changes.poll()
    CHANGES[how](path, "version: 2\n")
    assert changes.poll()
    assert not changes.poll()  # reported once
    assert path.read_text() == "version: 2\n"


@pytest.mark.parametrize("how", CHANGES)
def test_the_tokens_file_reloads_after_every_kind_of_change(tmp_path: Path, how: str) -> None:
    # Same length on purpose: the mtime-restoring copy leaves size and mtime as they were.
    first = "tokens:\n- {name: ci, token: tok-aaaaaaaa}\n"
    second = "tokens:\n- {name: ci, token: tok-bbbbbbbb}\n"
    path = _file(tmp_path, how, first)
    tokens = TokenFile(path, interval=0.0)
    assert tokens.check("tok-aaaaaaaa") == "ci"
    CHANGES[how](path, second)
    assert tokens.check("tok-bbbbbbbb") == "ci"
    assert tokens.check("tok-aaaaaaaa") is None


def test_deletion_and_re_creation_are_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a\n")
    changes = FileChanges(path, interval=0.0)
    path.unlink()
    assert changes.poll()
    assert not changes.exists
    assert not changes.poll()
    path.write_text("a\n")
    assert changes.poll()
    assert changes.exists


def test_settle_waits_for_two_looks_at_the_same_new_version(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a\n")
    changes = FileChanges(path, interval=0.0, settle=True)
    _in_place(path, "half")  # an in-place edit caught half-way
    assert not changes.poll()
    _in_place(path, "half written, now whole\n")
    assert not changes.poll()  # changed again since the last look: not settled
    assert changes.poll()  # the same as the last look: settled, reported
    assert not changes.poll()
    path.unlink()
    assert not changes.poll()
    assert changes.poll()
    assert not changes.exists


def test_looks_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a\n")
    changes = FileChanges(path, interval=10.0)
    path.write_text("changed, longer\n")
    start = 1_000_000.0  # monotonic seconds, far past the construction time
    assert changes.poll(start)
    path.write_text("changed again, longer still\n")
    assert not changes.poll(start + 9.9)  # not looked at yet
    assert changes.poll(start + 10.0)
