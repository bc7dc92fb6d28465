"""The CLI's live view folds stream events into progress without ever going backwards."""

from __future__ import annotations

from typing import Any

import pytest

from trainyard.cli.hyperparameters import BadHyperparameter, parse_overrides
from trainyard.cli.progress_view import JobProgress, format_duration, metrics_line


def _heartbeat(seq: int, epoch: int, **metrics: float) -> dict[str, Any]:
    data = {"epoch": epoch, "epochs": 10, "metrics": metrics, "eta_s": 90.0 - epoch}
    return {"seq": seq, "type": "heartbeat", "data": data}


def test_an_epoch_heartbeat_moves_progress_and_prints_one_line_with_losses_and_map50() -> None:
    view = JobProgress("job_1")

    line = view.apply(_heartbeat(3, 2, **{"train/box_loss": 1.5, "metrics/mAP50(B)": 0.25}))

    assert view.epoch == 2
    assert view.epochs == 10
    assert line is not None
    assert "epoch 2/10" in line
    assert "box 1.500" in line
    assert "mAP50 0.250" in line
    assert "ETA 1:28" in line


def test_a_late_heartbeat_for_an_older_epoch_never_moves_the_view_back() -> None:
    view = JobProgress("job_1")
    view.apply(_heartbeat(5, 4, **{"train/box_loss": 1.0}))

    line = view.apply(_heartbeat(6, 3, **{"train/box_loss": 9.0}))

    assert line is None
    assert view.epoch == 4
    assert view.metrics == {"train/box_loss": 1.0}


def test_keepalive_heartbeats_of_the_same_epoch_print_nothing() -> None:
    view = JobProgress("job_1")
    view.apply(_heartbeat(5, 4, **{"train/box_loss": 1.0}))

    assert view.apply(_heartbeat(6, 4)) is None
    assert view.metrics == {"train/box_loss": 1.0}


def test_state_events_set_the_state_and_the_reason() -> None:
    view = JobProgress("job_1")

    line = view.apply(
        {"seq": 9, "type": "state", "data": {"from": "RUNNING", "to": "FAILED", "reason": "boom"}}
    )

    assert view.state == "FAILED"
    assert view.finished
    assert view.reason == "boom"
    assert line == "state → FAILED: boom"


def test_metrics_line_groups_train_val_and_quality_metrics() -> None:
    line = metrics_line(
        {"train/box_loss": 1.0, "val/box_loss": 2.0, "metrics/mAP50-95(B)": 0.125}
    ).plain

    assert line == "train loss box 1.000 · val loss box 2.000 · mAP50-95 0.125"


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "–"), (5, "0:05"), (61.9, "1:01"), (3725, "1:02:05")]
)
def test_durations_read_like_a_clock(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_overrides_are_typed_from_key_value_words() -> None:
    parsed = parse_overrides(["lr0=0.01", "cos_lr=true", "workers=0", "optimizer=AdamW"])

    assert parsed == {"lr0": 0.01, "cos_lr": True, "workers": 0, "optimizer": "AdamW"}


def test_a_word_without_equals_sign_is_refused() -> None:
    with pytest.raises(BadHyperparameter, match="key=value"):
        parse_overrides(["lr0"])
