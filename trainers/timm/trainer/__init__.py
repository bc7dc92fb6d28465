"""Trainyard's timm trainer: a standalone program that honours docs/trainer-contract.md."""
