"""The bounded `reason` label of the metrics (telemetry/reasons.py), from the reason texts the
workflow and the outcomes module actually write."""

from __future__ import annotations

import pytest

from trainyard_workflows.outcomes import exit_reason
from trainyard_workflows.telemetry.reasons import REASONS, failure_reason, finish_reason


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("dataset validation failed: train/ has no images", "dataset_invalid"),
        (
            "all 3 attempts ended without a result; the last: no heartbeat for 60s: attempt 3 lost",
            "attempts_exhausted",
        ),
        ("interrupted 4 times; the last: stopped from outside: x", "interrupted_too_often"),
        ("no heartbeat for 60s: attempt 1 lost", "no_heartbeat"),
        ("attempt 2 could not start: ImagePullBackOff", "unstartable"),
        ("its pod was taken by the cluster: preempted", "interrupted"),
        ("stopped from outside: trainer exited with code 143", "interrupted"),
        ("the trainer of attempt 1 was stopped without a cancel request", "interrupted"),
        (exit_reason(1, ["Traceback", "ValueError: bad"]), "trainer_failed"),
        (exit_reason(-9, []), "trainer_failed"),
        ("launch_trainer failed: TRAINYARD_DATASET_URI is missing", "activity_failed"),
        ("something nobody planned", "other"),
        (None, "other"),
    ],
)
def test_a_failure_text_maps_to_its_label(text: str | None, label: str) -> None:
    assert failure_reason(text) == label
    assert label in REASONS


def test_a_jobs_end_is_labelled_by_state_first_then_by_reason_and_reporter() -> None:
    assert finish_reason("SUCCEEDED", None) == "succeeded"
    assert finish_reason("CANCELLED", "cancelled before it started") == "cancelled"
    assert finish_reason("FAILED", "no heartbeat for 5s: attempt 1 lost") == "no_heartbeat"
    # A trainer's own `done(failed)` says why in its words: still a trainer failure.
    assert finish_reason("FAILED", "CUDA out of memory", "trainer") == "trainer_failed"
    assert finish_reason("FAILED", "CUDA out of memory", "worker") == "other"
