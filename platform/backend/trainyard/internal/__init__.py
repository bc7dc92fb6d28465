"""The internal API: how the worker reports to the backend (docs/architecture.md)."""
