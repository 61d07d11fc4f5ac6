"""The database behind the server: where it is, its schema, the audit trail and the catalog.

SQLite (a file in the state directory) by default; PostgreSQL, through psycopg 3, when server
replicas share one database. :class:`IntentStore` is the audit trail with its write-ahead half
(promotions recorded before their copy); :class:`JtiStore` is the built-in issuer's memory of
SSH-JWT ids already used. :meth:`AuditStore.open` migrates the schema to the
newest Alembic revision before returning, taking turns with other replicas that start at the
same time.
"""

from __future__ import annotations

from ._audit_query import DEFAULT_PAGE, MAX_EXPORT, MAX_PAGE, AuditCursor, AuditPage, AuditQuery
from ._catalog import SORT_KEYS, CatalogImage, CatalogStore, ImportImage, ImportResult
from ._history import RepositoryQuery
from ._intents import CatalogPromotion, IntentStore, PendingIntent, PromotionIntent, Settled
from ._jti import JtiStore
from ._record import ACTIONS, KINDS, RESULTS, AuditRecord
from ._scan import ScanStore, WatchState
from ._store import MAX_INDEXED_CHARS, MAX_RECENT, AuditStore
from ._url import DATABASE_FILENAME, DATABASE_URL_ENV, database_url, normalise_url, redact_url

__all__ = [
    "ACTIONS",
    "DATABASE_FILENAME",
    "DATABASE_URL_ENV",
    "DEFAULT_PAGE",
    "KINDS",
    "MAX_EXPORT",
    "MAX_INDEXED_CHARS",
    "MAX_PAGE",
    "MAX_RECENT",
    "RESULTS",
    "SORT_KEYS",
    "AuditCursor",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditStore",
    "CatalogImage",
    "CatalogPromotion",
    "CatalogStore",
    "ImportImage",
    "ImportResult",
    "IntentStore",
    "JtiStore",
    "PendingIntent",
    "PromotionIntent",
    "RepositoryQuery",
    "ScanStore",
    "Settled",
    "WatchState",
    "database_url",
    "normalise_url",
    "redact_url",
]
