from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cloudpickle  # type: ignore[import-untyped]  # what Ultralytics pickles DDP state with
import pytest
from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.testing.callback_server import CallbackServer

from trainer.progress import ProgressReporter, ResultsWatcher, epoch_metrics


@pytest.fixture
def client(callback_server: CallbackServer) -> Iterator[CallbackClient]:
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as c:
        yield c


def _fake_trainer(epoch: int, epochs: int = 3) -> SimpleNamespace:
    def label_loss_items(items: dict[str, float], prefix: str = "train") -> dict[str, float]:
        return {f"{prefix}/{k}": v for k, v in items.items()}

    return SimpleNamespace(
        epoch=epoch,
        epochs=epochs,
        start_epoch=0,
        metrics={"metrics/mAP50(B)": 0.25, "val/box_loss": 1.5, "fitness": float("nan")},
        tloss={"box_loss": 2.0, "cls_loss": 3.0},
        label_loss_items=label_loss_items,
        lr={"lr/pg0": 0.01},
        last=Path("/run/weights/last.pt"),
        best=Path("/run/weights/best.pt"),
        best_fitness=0.1,
        fitness=0.1,
    )


def test_epoch_metrics_labels_training_losses() -> None:
    assert epoch_metrics(_fake_trainer(0)) == {
        "metrics/mAP50(B)": 0.25,
        "val/box_loss": 1.5,
        "train/box_loss": 2.0,
        "train/cls_loss": 3.0,
        "lr/pg0": 0.01,
    }


def test_epoch_end_heartbeats_and_final_validation(
    callback_server: CallbackServer, client: CallbackClient
) -> None:
    reporter = ProgressReporter(client, StopFlag(), epochs=3, keepalive_s=60)
    trainer = _fake_trainer(0)
    reporter.on_train_start(trainer)
    for epoch in range(3):
        trainer.epoch = epoch
        reporter.on_train_epoch_start(trainer)
        reporter.on_train_batch_end(trainer)
        reporter.on_model_save(trainer)
        reporter.on_fit_epoch_end(trainer)
    # Ultralytics' final validation of best.pt: one more on_fit_epoch_end, epoch + 1.
    trainer.epoch = 3
    trainer.metrics = {"metrics/mAP50(B)": 0.5}
    reporter.on_fit_epoch_end(trainer)
    reporter.close()  # delivers what is queued

    heartbeats = [c.body for c in callback_server.of("heartbeat")]
    assert [hb["epoch"] for hb in heartbeats] == [1, 2, 3]
    assert all(hb["epochs"] == 3 for hb in heartbeats)
    assert heartbeats[0]["metrics"]["train/box_loss"] == 2.0
    assert "fitness" not in heartbeats[0]["metrics"]
    assert heartbeats[-1]["eta_s"] == 0.0
    events = [c.body for c in callback_server.of("event")]
    assert [e["data"]["epoch"] for e in events] == [1, 2, 3]
    assert events[0] == {
        "type": "checkpoint_saved",
        "message": "epoch 1 checkpoint",
        "data": {"path": "/run/weights/last.pt", "epoch": 1, "best": "/run/weights/best.pt"},
    }
    assert reporter.final_metrics["metrics/mAP50(B)"] == 0.5
    assert reporter.final_metrics["train/box_loss"] == 2.0


def test_stop_requests_raise_at_batch_boundaries(client: CallbackClient) -> None:
    stop = StopFlag()
    reporter = ProgressReporter(client, stop, epochs=3, keepalive_s=60)
    reporter.on_train_batch_end(None)

    stop.request_cancel()
    with pytest.raises(TrainingCancelled):
        reporter.on_train_batch_end(None)
    with pytest.raises(TrainingCancelled):
        reporter.on_val_batch_end(None)


def test_refusal_wins_over_cancel() -> None:
    stop = StopFlag()
    stop.request_cancel()
    refusal = CallbackRefused("heartbeat", 409)
    stop.request_refused(refusal)
    with pytest.raises(CallbackRefused):
        stop.check()
    assert stop.cancel_requested


def test_keepalive_sends_heartbeats_until_closed(
    callback_server: CallbackServer, client: CallbackClient
) -> None:
    reporter = ProgressReporter(client, StopFlag(), epochs=5, keepalive_s=0.05)
    reporter.start()
    assert callback_server.wait_for(lambda calls: len(calls) >= 4, timeout=5)
    reporter.close()
    count = len(callback_server.snapshot())
    time.sleep(0.2)

    heartbeats = callback_server.of("heartbeat")
    assert len(heartbeats) == count, "nothing after close()"
    assert all(hb.body["epoch"] == 0 and hb.body["metrics"] == {} for hb in heartbeats)
    elapsed = [hb.body["elapsed_s"] for hb in heartbeats]
    assert elapsed == sorted(elapsed)


def test_keepalive_refusal_requests_a_stop(
    callback_server: CallbackServer, client: CallbackClient
) -> None:
    answers = iter([202, 409])
    callback_server.responder = lambda kind, body: next(answers, 409)
    stop = StopFlag()
    reporter = ProgressReporter(client, stop, epochs=5, keepalive_s=0.05)
    reporter.start()
    deadline = time.monotonic() + 5
    while stop.refused is None and time.monotonic() < deadline:
        time.sleep(0.01)
    reporter.close()

    assert stop.refused is not None
    assert stop.refused.status_code == 409
    with pytest.raises(CallbackRefused):
        reporter.on_train_batch_end(None)
    assert len(callback_server.snapshot()) == 2


def test_pickled_hooks_are_detached_no_ops(client: CallbackClient) -> None:
    """DDP pickles the callbacks into worker processes; there they must do nothing."""
    stop = StopFlag()
    stop.request_cancel()
    reporter = ProgressReporter(client, stop, epochs=3, keepalive_s=60)

    hooks: dict[str, Any] = cloudpickle.loads(cloudpickle.dumps(reporter.hooks()))

    trainer = _fake_trainer(0)
    for hook in hooks.values():
        hook(trainer)  # neither sends nor raises


def _write_results(path: Path, rows: list[str], *, complete: bool = True) -> None:
    header = "epoch,time,train/box_loss,metrics/mAP50(B),lr/pg0"
    path.write_text("\n".join([header, *rows]) + ("\n" if complete else ""), encoding="utf-8")


def test_results_watcher_reads_complete_rows(tmp_path: Path) -> None:
    watcher = ResultsWatcher(tmp_path)
    assert watcher.latest_epoch() is None
    _write_results(tmp_path / "results.csv", ["1,3.2,2.5,0.1,0.01", "2,6.1,2.0,nan,0.01"])
    assert watcher.latest_epoch() == (2, {"train/box_loss": 2.0, "lr/pg0": 0.01})
    _write_results(tmp_path / "results.csv", ["1,3.2,2.5,0.1,0.01", "2,6.1,2."], complete=False)
    assert watcher.latest_epoch() is None

    assert not watcher.checkpoint_changed()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"x")
    assert watcher.checkpoint_changed()
    assert not watcher.checkpoint_changed()


def test_ddp_watch_reports_epochs_written_by_workers(
    callback_server: CallbackServer, client: CallbackClient, tmp_path: Path
) -> None:
    reporter = ProgressReporter(client, StopFlag(), epochs=2, keepalive_s=0.05)
    reporter.start(watch_run_dir=tmp_path)
    _write_results(tmp_path / "results.csv", ["1,3.2,2.5,0.1,0.01"])
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"x")
    try:
        assert callback_server.wait_for(
            lambda calls: (
                any(c.kind == "event" for c in calls)
                and any(c.kind == "heartbeat" and c.body["epoch"] == 1 for c in calls)
            ),
            timeout=10,
        )
    finally:
        reporter.close()

    epoch_beat = next(c.body for c in callback_server.of("heartbeat") if c.body["epoch"] == 1)
    assert epoch_beat["metrics"] == {"train/box_loss": 2.5, "metrics/mAP50(B)": 0.1, "lr/pg0": 0.01}
    event = callback_server.of("event")[0].body
    assert event["type"] == "checkpoint_saved"
    assert event["data"]["path"] == str(tmp_path / "weights" / "last.pt")
