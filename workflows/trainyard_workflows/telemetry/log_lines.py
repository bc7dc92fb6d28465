"""A trainer's JSON log lines (TRAINYARD_LOG_FORMAT=json), as people read them.

The worker ships a trainer's newest log lines to the job's page and puts the last ones in a
failed job's reason; with JSON logs on, those read as the console format would have written
them (`<time> <service> <LEVEL> <logger>: <message>`, then the traceback's lines). A line that is
not one of those JSON objects (a framework's own print, a progress bar) stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


def _readable(line: str) -> list[str]:
    if not line.startswith("{"):
        return [line]
    try:
        record = json.loads(line)
    except ValueError:
        return [line]
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return [line]
    head = " ".join(
        str(record[key]) for key in ("timestamp", "service") if record.get(key) is not None
    )
    level = str(record.get("level", "")).upper()
    text = f"{head} {level} {record.get('logger', '')}: {record['message']}".strip()
    exception = record.get("exception")
    return [*text.splitlines(), *(str(exception).splitlines() if exception else [])]


def readable_lines(lines: Iterable[str]) -> list[str]:
    """`lines` with each JSON log line written out as a console line (or several)."""
    return [out for line in lines for out in _readable(line)]
