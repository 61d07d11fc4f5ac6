"""Alembic environment: run imgctl's migrations on the connection the store hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from imgctl.store._schema import METADATA


def run_migrations() -> None:
    """Upgrade through the connection in ``config.attributes["connection"]``, in its transaction."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "imgctl migrations run only through imgctl.store.AuditStore.open, "
            "which passes a live connection"
        )
    context.configure(connection=connection, target_metadata=METADATA)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
