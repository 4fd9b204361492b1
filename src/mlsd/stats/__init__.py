"""Streaming statistics in river's shape (`update`, `get`, read-only flags)."""
