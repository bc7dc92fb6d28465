"""Shared plumbing of the backend: settings, database, errors, the Temporal connection."""
