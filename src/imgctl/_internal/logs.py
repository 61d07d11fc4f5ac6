"""Log lines that a caller's text cannot split or forge."""

from __future__ import annotations

import logging

from imgctl._internal.bounds import one_line

__all__ = ["OneLineFormatter"]


class OneLineFormatter(logging.Formatter):
    """A Formatter whose records each start one line that nothing else can start.

    The message is written on one line (line breaks and control characters escaped), so text
    quoted from a request cannot begin a line that reads as another record. A traceback keeps
    its lines, each indented, and its control characters other than line feeds are escaped.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The record's line, with its message on one line."""
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        """The record: one line, then its traceback (if any) indented below it."""
        text = super().format(record)
        first, newline, rest = text.partition("\n")
        if not newline:
            return first
        lines = (one_line(line) for line in rest.split("\n"))
        return first + "".join(f"\n    {line}" for line in lines)
