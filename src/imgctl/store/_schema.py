"""The tables as the code sees them; ``migrations/`` is what creates them in a database.

A test compares the two (Alembic's autogenerate diff must be empty), so a change here without
a new revision fails the suite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

__all__ = [
    "AUDIT_EVENTS",
    "CATALOG_FEED",
    "CATALOG_IMAGES",
    "CATALOG_REMOVALS",
    "ISSUER_JTI",
    "METADATA",
    "PROMOTED_ROWS",
    "PROMOTION_INTENTS",
    "SCAN_WATCHES",
    "UTCDateTime",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    PostgreSQL keeps it as ``timestamptz``; SQLite has no time zones, so the UTC wall time is
    stored and UTC is attached again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC; refuse a naive one."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored as UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY; elsewhere 64 bits
# so that an audit table that lives for years cannot run out of ids.
ID_TYPE: Final = BigInteger().with_variant(Integer(), "sqlite")

# The rows the statistics' partial indexes hold; a query must say it in these words (literal
# values, not parameters) for the planner to know it may use them.
PROMOTED_ROWS: Final = "action = 'promote' AND result = 'succeeded'"

METADATA: Final = MetaData(naming_convention={"pk": "pk_%(table_name)s"})

AUDIT_EVENTS: Final = Table(
    "audit_events",
    METADATA,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("request_id", Text, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("action", String(32), nullable=False),
    Column("result", String(32), nullable=False),
    Column("subject", Text),
    Column("email", Text),
    # JSON text rather than a JSON/ARRAY type: the same column works on SQLite and PostgreSQL.
    Column("groups", Text, nullable=False),
    Column("kind", String(32)),
    Column("reference", Text),
    Column("source_env", Text),
    Column("destination_env", Text),
    Column("source_ref", Text),
    Column("destination_ref", Text),
    Column("digest", Text),
    Column("bytes_copied", BigInteger),
    Column("duration_ms", BigInteger),
    Column("error_code", Text),
    Column("error", Text),
    Column("peer", Text),
    # Promotions with a signing key (issue 18): true signed (or found signed by that key),
    # false copied but not signed (signature_error says why); NULL when no key was configured.
    Column("signed", Boolean),
    Column("signature_key", Text),  # the key id (sha256 of the public key)
    Column("signature_error", Text),
    # Promotions with a signing key (issue 19): true when the digest carries the server's
    # promotion attestation (written, or found), false when it could not be written
    # (attestation_error says why); NULL when no key was configured. Its key is signature_key.
    Column("attested", Boolean),
    Column("attestation_error", Text),
    # Migration 0012: the image repository a promotion names (store/_history.py repository_of),
    # the story page's filter; NULL for other rows.
    Column("repository", Text),
    Index("ix_audit_events_time", "time"),
    Index("ix_audit_events_request_id", "request_id"),
    # Migration 0012: each filter of the audit trail with the time and id after it (the
    # order), so that a filter reads its own rows newest first and stops after a page
    # (store/_audit_query.py); PostgreSQL reads the ids of a page from the index alone.
    Index("ix_audit_events_subject", "subject", "time", "id"),
    Index("ix_audit_events_email", "email", "time", "id"),
    # The environments too (after the id, the order's tie-break): a rare result with an
    # environment is checked in this index without reading each row.
    Index("ix_audit_events_result", "result", "time", "id", "source_env", "destination_env"),
    Index("ix_audit_events_source_env", "source_env", "time", "id"),
    Index("ix_audit_events_destination_env", "destination_env", "time", "id"),
    # A readable limit's (source, destination) pairs, each looked up in time order.
    Index("ix_audit_events_route", "source_env", "destination_env", "time", "id"),
    # The pairs with one environment absent (PostgreSQL does not order by the columns after
    # an IS NULL, so these are partial indexes of their own).
    Index(
        "ix_audit_events_source_only",
        "source_env",
        "time",
        "id",
        sqlite_where=text("destination_env IS NULL"),
        postgresql_where=text("destination_env IS NULL"),
    ),
    Index(
        "ix_audit_events_destination_only",
        "destination_env",
        "time",
        "id",
        sqlite_where=text("source_env IS NULL"),
        postgresql_where=text("source_env IS NULL"),
    ),
    Index("ix_audit_events_repository", "repository", "time", "id"),
    # Migration 0010: the charts' statistics (store/_stats.py), over successful promotions only.
    Index(
        "ix_audit_events_promoted_into",
        "destination_env",
        "time",
        "digest",
        sqlite_where=text(PROMOTED_ROWS),
        postgresql_where=text(PROMOTED_ROWS),
    ),
    Index(
        "ix_audit_events_promoted_digest",
        "digest",
        "time",
        "destination_env",
        "source_env",
        sqlite_where=text(f"{PROMOTED_ROWS} AND digest IS NOT NULL"),
        postgresql_where=text(f"{PROMOTED_ROWS} AND digest IS NOT NULL"),
    ),
)

# The image catalog (imagelist's API): one row per image id (a digest, for promotions),
# environment and repository name. An id promoted under two repository names is two entries, so
# neither repository's digest or tags can answer for the other's. Entries of no environment
# ("", imagelist's own) keep imagelist's identity, the id alone: a partial unique index.
CATALOG_IMAGES: Final = Table(
    "catalog_images",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    # JSON text, like audit_events.groups.
    Column("tags", Text, nullable=False),
    Column("source", Text),
    Column("promoted_by", Text),
    Column("promoted_at", UTCDateTime),
    # What the server said of the promotion that recorded the entry (issue 19): signed with
    # its key, attested by it; NULL when it does not sign, or for entries written with PUT.
    Column("signed", Boolean),
    Column("attested", Boolean),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Migration 0011: the catalog_feed revision that last wrote the entry (admission's mirror
    # reads the entries written after the revision it saw).
    Column("revision", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_catalog_images_name", "name"),
    Index("ix_catalog_images_updated_at", "updated_at"),
    Index("ix_catalog_images_revision", "revision"),
    Index(
        "ux_catalog_images_id_without_environment",
        "id",
        unique=True,
        sqlite_where=text("environment = ''"),
        postgresql_where=text("environment = ''"),
    ),
)

# Migration 0011, the catalog's change feed: one row whose revision every catalog write bumps in
# its own transaction (taking the row lock first, so PostgreSQL writers commit revisions in
# order); pruned is the newest revision whose removals were dropped from catalog_removals. A
# reader that saw a revision older than pruned reads the whole catalog again.
CATALOG_FEED: Final = Table(
    "catalog_feed",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("pruned", BigInteger, nullable=False),
)

# The entries each catalog delete removed, by revision (kept for the last revisions only).
CATALOG_REMOVALS: Final = Table(
    "catalog_removals",
    METADATA,
    Column("revision", BigInteger, nullable=False),
    Column("id", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("name", Text, nullable=False),
    Index("ix_catalog_removals_revision", "revision"),
)

# Repository watches (imgctl scan): the last scan's tag set and status, one row per watch name.
# next_scan_at is also the lease that keeps server replicas from scanning the same watch twice.
SCAN_WATCHES: Final = Table(
    "scan_watches",
    METADATA,
    Column("name", Text, primary_key=True),
    Column("image", Text, nullable=False),
    Column("tags", Text, nullable=False),  # JSON list, sorted
    Column("revision", Text, nullable=False),  # sha256 of the tag set, "" before the first scan
    Column("scan_time", UTCDateTime),
    Column("ready", String(16), nullable=False),  # True / False / Unknown
    Column("reason", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("transition_time", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("latest_tag", Text),
    Column("latest_digest", Text),
    Column("promoted_tag", Text),
    Column("promoted_digest", Text),
    Column("next_scan_at", UTCDateTime, nullable=False),
    Column("owner", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

# SSH-JWT ids the built-in issuer (imgctl idp serve) has accepted, one row per (user, jti): the
# primary key is what lets exactly one of two replicas accept the same JWT. A row is needed only
# until its JWT expires (expires_at, the JWT's exp plus the clock skew); later rows are pruned.
ISSUER_JTI: Final = Table(
    "issuer_jti",
    METADATA,
    Column("subject", Text, primary_key=True),
    Column("jti", Text, primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=False),
    Index("ix_issuer_jti_expires_at", "expires_at"),
)

# Promotions recorded before their copy (write-ahead audit), one row per promotion that got past
# its checks. A pending row holds its destination's lock_key (sha256 hex; NULL once settled), so
# one destination tag has at most one promotion in flight across all replicas; lease_until is the
# owner's lease, renewed while it works, after which any replica may settle the row by looking at
# the destination. A settled row is deleted in the transaction that writes its audit row, except
# an abandoned one: it stays (with audit_id) so that a copy finishing late can still correct it.
PROMOTION_INTENTS: Final = Table(
    "promotion_intents",
    METADATA,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("request_id", Text, nullable=False),
    Column("lock_key", String(64)),
    Column("state", String(16), nullable=False),  # pending / abandoned
    Column("owner", Text, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("destination", Text, nullable=False),  # REGISTRY/REPO:TAG@DIGEST, or the SPA's name
    Column("digest", Text),  # the source's digest, pinned before the copy (images)
    Column("audit", Text, nullable=False),  # JSON: the audit record as known before the copy
    Column("catalog", Text),  # JSON: the catalog entry a finished copy gets (images)
    Column("note", Text),  # what the owner saw when it could not tell how the copy ended
    Column("audit_id", BigInteger),  # the audit row of an abandoned promotion
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ux_promotion_intents_lock_key", "lock_key", unique=True),
    Index("ix_promotion_intents_state_lease", "state", "lease_until"),
)
