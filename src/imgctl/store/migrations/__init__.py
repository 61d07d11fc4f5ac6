"""Alembic migrations of the imgctl database, run by :meth:`imgctl.store.AuditStore.open`.

There is no alembic.ini: the store builds the Alembic ``Config`` in code, points
``script_location`` here and hands its connection over in ``config.attributes["connection"]``.
To add a revision, copy ``versions/0001_audit_events.py`` to ``versions/NNNN_<what>.py``, bump
``revision`` and set ``down_revision`` to the previous one, and change
``imgctl/store/_schema.py`` to match (tests/integration/test_store.py checks that they agree).
"""
