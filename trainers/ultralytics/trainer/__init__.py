"""Trainyard's Ultralytics trainer: a standalone program that honours docs/trainer-contract.md."""
