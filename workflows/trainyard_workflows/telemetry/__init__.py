"""Telemetry shared by the API and the worker: traces, metrics and logs (docs/operations.md)."""
