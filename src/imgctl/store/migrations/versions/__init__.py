"""Alembic revision files, one per schema change, applied in ``down_revision`` order."""
