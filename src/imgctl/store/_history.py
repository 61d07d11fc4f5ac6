"""One repository's promotions in the audit trail: the audit query narrowed to a repository.

A repository is named as ``imgctl promote`` names it, without registry or environment prefix
(``shop/web``), and an audit row belongs to it when the reference the caller sent starts with
that name followed by ``:`` (a tag) or ``@`` (a digest). That reference is kept for every call,
refused ones included (a denied caller's row has no planned source or destination reference),
so the story of a repository shows its denied and failed attempts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, FromClause

from imgctl.oci.reference import NAME_TOTAL_LENGTH_MAX, valid_repository

from ._audit_query import AuditQuery
from ._schema import AUDIT_EVENTS

__all__ = ["RepositoryQuery", "repository_condition", "repository_of"]

_TABLE: Final = AUDIT_EVENTS
_SPA_SCHEME: Final = "spa:"


def repository_of(action: str, kind: str | None, reference: str | None) -> str | None:
    """The image repository an audit row's promotion names (``audit_events.repository``).

    What comes before the reference's first ``:`` (a tag) or ``@`` (a digest), for promotions
    of images (``kind`` image, or unknown when refused early); None for anything else, SPA
    references (``spa:NAME:VERSION``) and names longer than a repository can be. A repository
    path holds neither character, so this is the one repository whose story shows the row.
    """
    if action != "promote" or kind not in (None, "image") or not reference:
        return None
    if reference.startswith(_SPA_SCHEME):
        return None
    cut = min((i for i in (reference.find(":"), reference.find("@")) if i >= 0), default=-1)
    if cut <= 0 or cut > NAME_TOTAL_LENGTH_MAX:
        return None
    return reference[:cut]


def repository_condition(repository: str) -> ColumnElement[bool]:
    """Rows of promotions of the image repository ``repository`` (as ``imgctl promote`` names it).

    An equality on ``audit_events.repository`` (filled by :func:`repository_of` when the row
    is written; migration 0012 filled the older rows): its (repository, time) index reads one
    repository's rows newest first, where the reference's prefix could only be compared row by
    row along the whole time index (a second for a repository with no row, at 1,000,000 rows).
    """
    return _TABLE.c.repository == repository


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

    def _narrowed(self) -> bool:
        """The repository leads: its index holds its rows alone."""
        return True

    def conditions(self, table: FromClause = _TABLE) -> list[ColumnElement[bool]]:
        """The audit query's conditions and the repository's."""
        # AuditQuery's by name: zero-argument super() does not work in a slots dataclass.
        return [repository_condition(self.repository), *AuditQuery.conditions(self, table)]
