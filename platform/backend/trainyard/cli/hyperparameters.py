"""Parses `key=value` words from the command line into typed hyperparameters."""

from __future__ import annotations

import json
from typing import Any


class BadHyperparameter(ValueError):
    pass


def parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse_overrides(words: list[str]) -> dict[str, Any]:
    """`["lr0=0.01", "cos_lr=true"]` → `{"lr0": 0.01, "cos_lr": True}`."""
    parsed: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadHyperparameter(f"expected key=value, got {word!r}")
        parsed[key.strip()] = parse_value(value.strip())
    return parsed
