"""Test support shared by platform/backend/tests and workflows/tests (see plugin.py)."""
