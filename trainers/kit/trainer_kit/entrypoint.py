"""The start every trainer's ``trainyard-trainer`` (``python -m trainer``) shares: SIGTERM
handling first (a SIGTERM during start-up must not kill the trainer silently), then the
environment (a contract error: one line on stderr naming the variable, exit 2, no callback),
then the log format (one line per record on stderr, readable or JSON: log_format.py; the
platform ships it as the attempt's log, and the callback token never appears in it), and only
then the trainer's own attempt, inside its trace (tracing.py: from ``TRACEPARENT``; it ends, and
its spans are exported, after ``done`` and before the exit)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from trainer_kit.control import StopFlag, install_sigterm_handler
from trainer_kit.log_format import configure_logging
from trainer_kit.outcome import EXIT_CANCELLED, EXIT_CONTRACT, EXIT_OK
from trainer_kit.settings import ContractError, SettingsT
from trainer_kit.tracing import start_attempt_trace


def run_entrypoint(
    load_settings: Callable[[], SettingsT],
    attempt: Callable[[SettingsT, StopFlag], int],
    *,
    framework: str | None = None,
) -> int:
    """Read the environment with ``load_settings`` and run ``attempt`` (main thread only: it
    installs the SIGTERM handler); returns the exit code. ``framework`` names the trainer's
    framework in the attempt's trace."""
    stop = StopFlag()
    install_sigterm_handler(stop)
    try:
        settings = load_settings()
    except ContractError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONTRACT
    # TRACEPARENT is the W3C variable, not one of the contract's TRAINYARD_ settings.
    configure_logging(
        settings.log_format, settings.job_id, settings.attempt, os.environ.get("TRACEPARENT")
    )
    return _traced(settings, stop, attempt, framework)


def _traced(
    settings: SettingsT,
    stop: StopFlag,
    attempt: Callable[[SettingsT, StopFlag], int],
    framework: str | None,
) -> int:
    """``attempt`` inside the ``trainer.attempt`` span, failed unless the attempt succeeded or
    was cancelled (a SIGTERM also ends here: the handler only sets the stop flag)."""
    trace = start_attempt_trace(
        job_id=settings.job_id,
        attempt=settings.attempt,
        model=settings.model,
        framework=framework,
    )
    try:
        with trace.current():
            code = attempt(settings, stop)
    except BaseException as exc:
        trace.end(failed=True, error=exc)
        raise
    trace.end(failed=code not in (EXIT_OK, EXIT_CANCELLED), exit_code=code)
    return code
