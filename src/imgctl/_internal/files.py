"""Reading the files a user hands imgctl: bounded, UTF-8 only, one clear error for each mistake."""

from __future__ import annotations

import sys
from pathlib import Path

from imgctl.errors import UsageError

__all__ = ["MAX_CONFIG_BYTES", "read_text"]

# No configuration, manifest or pair list imgctl reads comes near this; a file that does is
# the wrong file (an image, a database), and reading it whole would only cost memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024


def read_text(path: Path, what: str, *, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of ``path`` ('-' is standard input); UsageError naming ``what`` otherwise."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(
            f"{what} {path} is larger than {limit // (1024 * 1024)} MiB",
            hint="is it the right file?",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}, line {line})",
            hint="is it the right file? Save it as UTF-8",
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UsageError(
            f"{what} {path} is binary, not text (a NUL byte on line {line})",
            hint="is it the right file?",
        )
    return text.removeprefix("\ufeff")
