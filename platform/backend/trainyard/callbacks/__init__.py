"""Trainer -> backend callbacks (docs/trainer-contract.md)."""
