"""Which request bodies the API reads as JSON, one rule for every route and the same-origin
guard: `application/json` or any `application/*+json`, parameters (charset) ignored."""

from __future__ import annotations

from trainyard.core.errors import TrainyardError


class UnsupportedMediaType(TrainyardError):
    status_code = 415
    code = "unsupported_media_type"


def json_subtype(content_type: str | None) -> str | None:
    """`json` or the `…+json` subtype of a JSON media type; None for any other (or none)."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media.partition("/")
    return (
        subtype
        if maintype == "application" and (subtype == "json" or subtype.endswith("+json"))
        else None
    )
