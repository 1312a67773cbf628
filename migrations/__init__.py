"""Alembic migrations for the MaskWatch database."""
