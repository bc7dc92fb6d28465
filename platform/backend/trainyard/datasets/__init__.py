"""Datasets: a registry of named dataset locations (uploads come later)."""
