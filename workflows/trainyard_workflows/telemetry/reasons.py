"""Why a job or an attempt ended, as a bounded metric label.

A job's `reason` is free text (the workflow writes sentences, a trainer writes its own), so it
cannot be a label. These functions map it onto a fixed set: the API's
`trainyard_jobs_finished_total{reason}` and the worker's `trainyard_attempts_ended_total{reason}`
use the same words. The phrases matched are the ones the workflow writes
(training.py, outcomes.py); anything else is `other` (or `trainer_failed` when the trainer
itself said `failed`).
"""

from __future__ import annotations

import re
from typing import Final

SUCCEEDED: Final = "succeeded"
CANCELLED: Final = "cancelled"
DATASET_INVALID: Final = "dataset_invalid"
ATTEMPTS_EXHAUSTED: Final = "attempts_exhausted"
INTERRUPTED_TOO_OFTEN: Final = "interrupted_too_often"
NO_HEARTBEAT: Final = "no_heartbeat"
UNSTARTABLE: Final = "unstartable"
INTERRUPTED: Final = "interrupted"
TRAINER_FAILED: Final = "trainer_failed"
ACTIVITY_FAILED: Final = "activity_failed"
OTHER: Final = "other"

REASONS: Final = frozenset(
    {
        SUCCEEDED,
        CANCELLED,
        DATASET_INVALID,
        ATTEMPTS_EXHAUSTED,
        INTERRUPTED_TOO_OFTEN,
        NO_HEARTBEAT,
        UNSTARTABLE,
        INTERRUPTED,
        TRAINER_FAILED,
        ACTIVITY_FAILED,
        OTHER,
    }
)

# First match wins: the wrappers ("all 3 attempts ended ...; the last: <reason>") come before
# what they wrap.
_FAILURES: Final = (
    (re.compile(r"^dataset validation failed"), DATASET_INVALID),
    (re.compile(r"^all \d+ attempts ended without a result"), ATTEMPTS_EXHAUSTED),
    (re.compile(r"^interrupted \d+ times"), INTERRUPTED_TOO_OFTEN),
    (re.compile(r"^no heartbeat for "), NO_HEARTBEAT),
    (re.compile(r"^attempt \d+ could not start"), UNSTARTABLE),
    (
        re.compile(
            r"^(its pod was taken by the cluster|stopped from outside|"
            r"the trainer of attempt \d+ was stopped without a cancel request)"
        ),
        INTERRUPTED,
    ),
    (re.compile(r"^trainer exited with "), TRAINER_FAILED),
    (re.compile(r"^\w+ failed: "), ACTIVITY_FAILED),  # outcomes.activity_failure_reason
)


def failure_reason(reason: str | None) -> str:
    """The label of a failure's (or a retried attempt's) reason text."""
    text = reason or ""
    for pattern, label in _FAILURES:
        if pattern.match(text):
            return label
    return OTHER


def finish_reason(state: str, reason: str | None, source: str | None = None) -> str:
    """The label of a job's end: its terminal `state`, the transition's `reason` and who
    reported it (`trainer` for a trainer's `done`)."""
    if state == "SUCCEEDED":
        return SUCCEEDED
    if state == "CANCELLED":
        return CANCELLED
    label = failure_reason(reason)
    if label == OTHER and source == "trainer":
        return TRAINER_FAILED  # the trainer's own `done(failed)`, in its own words
    return label
