"""Persistence for MaskWatch: engine/session setup, ORM models, migrations and repositories."""
