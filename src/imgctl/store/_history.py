"""One repository's promotions in the audit trail: the audit query narrowed to a repository.

A repository is named as ``imgctl promote`` names it, without registry or environment prefix
(``shop/web``), and an audit row belongs to it when the reference the caller sent starts with
that name followed by ``:`` (a tag) or ``@`` (a digest). That reference is kept for every call,
refused ones included (a denied caller's row has no planned source or destination reference),
so the story of a repository shows its denied and failed attempts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, func, or_

from imgctl.oci.reference import valid_repository

from ._audit_query import AuditCursor, AuditQuery
from ._schema import AUDIT_EVENTS

__all__ = ["RepositoryQuery", "repository_condition"]

_TABLE: Final = AUDIT_EVENTS
_SPA_SCHEME: Final = "spa:"


def repository_condition(repository: str) -> ColumnElement[bool]:
    """Rows of promotions of the image repository ``repository`` (as ``imgctl promote`` names it).

    ``substr`` rather than ``LIKE``: exact and case-sensitive on SQLite and PostgreSQL alike,
    with no wildcard to escape (``_`` is common in repository names).
    """
    table = _TABLE
    head = func.substr(table.c.reference, 1, len(repository) + 1)
    return and_(
        table.c.action == "promote",
        head.in_([f"{repository}:", f"{repository}@"]),
        # SPA references (spa:NAME:VERSION) are never images, even for a repository "spa".
        func.substr(table.c.reference, 1, len(_SPA_SCHEME)) != _SPA_SCHEME,
        or_(table.c.kind.is_(None), table.c.kind == "image"),
    )


@dataclass(frozen=True, slots=True)
class RepositoryQuery(AuditQuery):
    """An :class:`AuditQuery` narrowed to one repository's promotions.

    ``repository`` must be a valid repository path (ValueError otherwise). Read it with
    :meth:`AuditStore.search` like any audit query.
    """

    repository: str = ""

    def __post_init__(self) -> None:
        AuditQuery.__post_init__(self)
        if not valid_repository(self.repository):
            raise ValueError(f"not a repository path: {self.repository!r}")

    def select(self, cursor: AuditCursor | None, limit: int) -> Select[Any]:
        """The audit query's SELECT with the repository's condition added."""
        # AuditQuery.select by name: zero-argument super() does not work in a slots dataclass.
        return AuditQuery.select(self, cursor, limit).where(repository_condition(self.repository))
