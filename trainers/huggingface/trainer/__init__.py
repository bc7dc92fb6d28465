"""Trainyard trainer for Hugging Face transformers."""
