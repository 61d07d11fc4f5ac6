"""The one error the store adds to :mod:`imgctl.errors`."""

from __future__ import annotations

from imgctl.errors import ImgctlError

__all__ = ["StoreError"]


class StoreError(ImgctlError):
    """The audit database could not be reached, migrated, read or written.

    Messages name the database by its redacted URL; they never contain a password.
    """
