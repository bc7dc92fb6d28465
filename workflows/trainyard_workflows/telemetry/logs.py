"""Structured logs for the API and the worker: one structlog pipeline behind the standard library.

`configure_logging` puts one handler on the root logger whose formatter is structlog's
`ProcessorFormatter`, so uvicorn's, temporalio's and our own `logging.getLogger(...)` lines all
come out the same way: JSON lines (`json`, for a log shipper) or readable lines (`console`, the
embedded tier's default). Every line carries `timestamp`, `level`, `logger`, `message` (the
console shows it unlabelled) and `service`; and, where known, the job and attempt, the caller's
project and user (bound per request or activity with `bind_job` / `bind_caller`: structlog
contextvars, so they stay with the asyncio task that bound them) and the `trace_id` / `span_id`
of the OpenTelemetry span being recorded.

Secrets never reach these fields: what is bound is ids, and messages are redacted where they are
written (stream tickets: trainyard.auth.stream_tickets).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["console", "json"]

# Our own loggers: the only ones a `debug` level reaches. Libraries stay at info even then:
# their debug output is noise, and some carry data (aiosqlite logs each statement with its
# parameters).
OWN_LOGGERS = ("trainyard", "trainyard_workflows", "uvicorn")


def add_trace_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """`trace_id` (32 hex) and `span_id` (16 hex) of the current span, when one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        context = span.get_span_context()
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def _service(name: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event.setdefault("service", name)
        return event

    return add_service


def _shared_processors(service: str) -> list[Processor]:
    """What every line gets, from structlog and from the standard library alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _service(service),
        add_trace_context,
    ]


# The fields a reader looks for first, first on each JSON line; the rest follow as bound.
_LEADING = ("timestamp", "level", "logger", "message", "service")


def _leading_fields_first(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return {
        **{key: event[key] for key in _LEADING if key in event},
        **{key: value for key, value in event.items() if key not in _LEADING},
    }


def _renderers(fmt: LogFormat, stream: TextIO) -> list[Processor]:
    if fmt == "json":
        return [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _leading_fields_first,
            structlog.processors.JSONRenderer(),
        ]
    return [
        structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    ]


def configure_logging(
    service: str, level: str, fmt: LogFormat, *, stream: TextIO | None = None
) -> None:
    """Route every log record of the process to `stream` (stderr) in `fmt`; `level` (debug,
    info, warning, error) for our own loggers, at least info for libraries. Replaces the root
    logger's handlers, so calling it again reconfigures rather than doubles the lines."""
    out = stream if stream is not None else sys.stderr
    shared = _shared_processors(service)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderers(fmt, out),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(numeric, logging.INFO))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)


def bind_job(job_id: str, attempt: int | None = None) -> None:
    """Add `job_id` (and `attempt`) to every line the current task logs from now on."""
    if attempt is None:
        structlog.contextvars.bind_contextvars(job_id=job_id)
    else:
        structlog.contextvars.bind_contextvars(job_id=job_id, attempt=attempt)


def bind_caller(user: str, project: str | None = None) -> None:
    """Add the caller's user id (and the project it acts in) to the current task's lines."""
    if project is None:
        structlog.contextvars.bind_contextvars(user=user)
    else:
        structlog.contextvars.bind_contextvars(user=user, project=project)
