"""Alembic environment of the Trapline schema (configured in trapline.storage.migrate)."""
