"""Admission: which validated job may take the platform's GPUs or CPU slots now, and why the
others wait (docs/operations.md, "Capacity, queues and quotas")."""
