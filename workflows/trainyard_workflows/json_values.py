"""JSON values that survive a round trip through any database and any JSON encoder."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator


def finite_or_none(value: float | None) -> float | None:
    # A diverging run reports NaN losses; strict JSON has no NaN, so they are stored as null.
    return value if value is None or math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = _json_safe(value)
    return safe


Number = Annotated[float | None, AfterValidator(finite_or_none)]
# A free-form JSON object from a client, with NaN/Infinity replaced by null.
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
