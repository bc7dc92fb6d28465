"""The trainer's log lines on stderr, which the platform ships as the attempt's log.

``TRAINYARD_LOG_FORMAT=console`` (the default): readable lines prefixed ``trainyard-trainer``.
``json``: one JSON object a line with the fields of the platform's own JSON logs
(``timestamp``, ``level``, ``logger``, ``message``, ``service``, ``job_id``, ``attempt``, and
``trace_id`` / ``span_id`` when the attempt is traced), so one log pipeline parses every
process. The trace comes from the span being recorded, if the kit traces the attempt, else
from the ``TRACEPARENT`` the worker handed over (the launch span). Standard library only: the
kit takes no logging dependency.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["console", "json"]
SERVICE = "trainyard-trainer"
CONSOLE_FORMAT = f"%(asctime)s {SERVICE} %(levelname)s %(name)s: %(message)s"

# W3C trace context: version-traceid-parentid-flags (lowercase hex; all-zero ids are invalid).
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def inherited_trace(traceparent: str | None) -> tuple[str, str] | None:
    """The trace id and span id of a ``TRACEPARENT`` value; None when absent or malformed
    (a log line never fails over it)."""
    match = _TRACEPARENT.match((traceparent or "").strip())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[1], match[2]


def _recording_trace() -> tuple[str, str] | None:
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonLines(logging.Formatter):
    """Formats a record as one JSON object (no newline inside: messages are escaped)."""

    def __init__(self, job_id: str, attempt: int, inherited: tuple[str, str] | None) -> None:
        super().__init__()
        self._job_id = job_id
        self._attempt = attempt
        self._inherited = inherited

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": SERVICE,
            "job_id": self._job_id,
            "attempt": self._attempt,
        }
        ids = _recording_trace() or self._inherited
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def configure_logging(
    log_format: LogFormat, job_id: str, attempt: int, traceparent: str | None = None
) -> None:
    """INFO and up to stderr in `log_format`; httpx's per-request lines off. As
    `logging.basicConfig`, it leaves a root logger that already has handlers alone."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines(job_id, attempt, inherited_trace(traceparent)))
    else:
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
