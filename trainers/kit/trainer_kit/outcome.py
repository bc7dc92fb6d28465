"""How an attempt ends: its exit code, the reason of a failure, the artifacts it reports and the
``done`` callback (docs/trainer-contract.md).

`report_success` and `report_failure` are the end of an attempt in one process:
``done(succeeded)``; or ``done(cancelled)`` after SIGTERM, ``done(failed)`` with the reason
otherwise; or no callback at all once the backend has refused the attempt's callbacks.

Exit codes: `EXIT_OK` (``done(succeeded)`` delivered), `EXIT_FAILED` (training failed, ``done``
not delivered, or the backend refused the attempt's callbacks), `EXIT_CONTRACT` (a bad
environment; no callback at all) and `EXIT_CANCELLED` (stopped by SIGTERM, 128 + 15).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from trainer_kit.callbacks import CallbackClient, CallbackError, CallbackRefused, DoneStatus
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.publishing import RunPublisher

log = logging.getLogger("trainyard.trainer.run")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONTRACT = 2
EXIT_CANCELLED = 143

_REASON_LIMIT = 2000


def describe(exc: BaseException) -> str:
    """``<type>: <message>`` on one line, for ``done(failed).reason``."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def collect_artifacts(
    folder: Path, files: Mapping[str, str], publisher: RunPublisher | None = None
) -> dict[str, str]:
    """The run's files: ``files`` maps an artifact name to a path relative to the run
    ``folder``. Without a publisher, the absolute paths of those that exist; with one, the
    ``s3://`` URIs of those published so far. ``run_dir`` is the folder itself (its URI)."""
    if publisher is None:
        candidates = {key: folder / name for key, name in files.items()}
        artifacts = {key: str(path.resolve()) for key, path in candidates.items() if path.is_file()}
        if folder.is_dir():
            artifacts["run_dir"] = str(folder.resolve())
        return artifacts
    run = publisher.relative(folder)
    uploaded = dict(publisher.uploaded)
    artifacts = {
        key: uploaded[f"{run}/{name}"] for key, name in files.items() if f"{run}/{name}" in uploaded
    }
    if any(relative.startswith(f"{run}/") for relative in uploaded):
        artifacts["run_dir"] = publisher.location.uri(run)
    return artifacts


def send_done(
    client: CallbackClient | None,
    status: DoneStatus,
    *,
    reason: str | None,
    metrics: Mapping[str, float],
    artifacts: Mapping[str, str],
) -> bool:
    """Send ``done`` unless the backend refused the attempt's callbacks; True once delivered
    (always for no client: a rank that does not report)."""
    if client is None:
        return True
    if client.refused is not None:
        log.error("not sending done(%s): callbacks were refused (%s)", status, client.refused)
        return False
    try:
        client.done(status, reason=reason, metrics=metrics, artifacts=artifacts)
    except CallbackError as exc:
        log.error("done(%s) not delivered: %s", status, exc)
        return False
    return True


def report_success(
    client: CallbackClient, *, metrics: Mapping[str, float], artifacts: Mapping[str, str]
) -> int:
    """``done(succeeded)``; the exit code (`EXIT_FAILED` when it was not delivered)."""
    delivered = send_done(client, "succeeded", reason=None, metrics=metrics, artifacts=artifacts)
    return EXIT_OK if delivered else EXIT_FAILED


def report_failure(
    client: CallbackClient,
    exc: BaseException,
    stop: StopFlag,
    *,
    metrics: Mapping[str, float],
    artifacts: Callable[[], Mapping[str, str]],
    describe: Callable[[BaseException], str] = describe,
    sigterm_cancels: Callable[[], bool] = lambda: True,
) -> int:
    """The attempt ended with ``exc``: nothing more after a refused callback, ``done(cancelled)``
    after SIGTERM, else ``done(failed)`` naming the failure (one a helper thread recorded on
    ``stop`` first: an upload failure is the cause, not the teardown); the exit code.

    ``sigterm_cancels`` is asked after a SIGTERM whether it was the platform's cancel: a rank of a
    distributed run is also stopped so when another rank failed, which is a failure."""
    refusal = exc if isinstance(exc, CallbackRefused) else (stop.refused or client.refused)
    sigterm = stop.cancel_requested or isinstance(exc, TrainingCancelled)
    cancelled = sigterm and sigterm_cancels()
    if refusal is not None:
        log.error("%s: stopping without further callbacks", refusal)
        return EXIT_CANCELLED if cancelled else EXIT_FAILED
    if cancelled:
        log.warning("stopped by SIGTERM")
        send_done(
            client,
            "cancelled",
            reason="stopped by SIGTERM",
            metrics=metrics,
            artifacts=artifacts(),
        )
        return EXIT_CANCELLED
    failure = stop.failure or exc
    log.error("training failed", exc_info=failure)
    send_done(client, "failed", reason=describe(failure), metrics=metrics, artifacts=artifacts())
    return EXIT_FAILED
