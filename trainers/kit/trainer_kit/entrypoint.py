"""The start every trainer's ``trainyard-trainer`` (``python -m trainer``) shares: SIGTERM
handling first (a SIGTERM during start-up must not kill the trainer silently), then the
environment (a contract error: one line on stderr naming the variable, exit 2, no callback),
then the log format (one line per record on stderr, which the platform ships as the attempt's
log; the callback token never appears in it), and only then the trainer's own attempt."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from trainer_kit.control import StopFlag, install_sigterm_handler
from trainer_kit.outcome import EXIT_CONTRACT
from trainer_kit.settings import ContractError, SettingsT


def configure_logging() -> None:
    """INFO and up to stderr, prefixed ``trainyard-trainer``; httpx's per-request lines off."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s trainyard-trainer %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def run_entrypoint(
    load_settings: Callable[[], SettingsT], attempt: Callable[[SettingsT, StopFlag], int]
) -> int:
    """Read the environment with ``load_settings`` and run ``attempt`` (main thread only: it
    installs the SIGTERM handler); returns the exit code."""
    stop = StopFlag()
    install_sigterm_handler(stop)
    try:
        settings = load_settings()
    except ContractError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONTRACT
    configure_logging()
    return attempt(settings, stop)
