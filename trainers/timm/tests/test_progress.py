from __future__ import annotations

import time
from pathlib import Path

from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.control import StopFlag
from trainer_kit.testing.callback_server import CallbackServer

from trainer.job import EpochReport
from trainer.progress import EpochAnnouncer, ProgressReporter


def _client(server: CallbackServer) -> CallbackClient:
    return CallbackClient(server.url, "job_1", "tok", sleep=lambda _: None)


def test_keepalives_repeat_the_last_epoch_without_metrics(callback_server: CallbackServer) -> None:
    stop = StopFlag()
    with _client(callback_server) as client:
        reporter = ProgressReporter(client, stop, epochs=5, keepalive_s=0.1)
        reporter.start(epoch=2, metrics={"val/top1": 50.0})
        assert callback_server.wait_for(lambda calls: len(calls) >= 3, timeout=10)
        reporter.close()

    beats = [c.body for c in callback_server.of("heartbeat")]
    assert beats[0]["metrics"] == {"val/top1": 50.0}
    assert all((b["epoch"], b["epochs"], b["metrics"]) == (2, 5, {}) for b in beats[1:])
    assert all(b["eta_s"] is None for b in beats)
    assert not stop.stop_requested


def test_announcer_publishes_best_then_last_then_sends_the_heartbeat(
    callback_server: CallbackServer, tmp_path: Path
) -> None:
    published: list[str] = []

    def publish(path: Path) -> str:
        published.append(path.name)
        return f"s3://b/run/weights/{path.name}"

    with _client(callback_server) as client:
        reporter = ProgressReporter(client, StopFlag(), epochs=2, keepalive_s=60)
        announce = EpochAnnouncer(reporter, publish)
        report = EpochReport(1, 2, {"val/top1": 10.0}, tmp_path / "last.pt", tmp_path / "best.pt")
        announce(report)
        reporter.close()  # delivers what is queued

    assert published == ["best.pt", "last.pt"]
    event, beat = callback_server.snapshot()
    assert event.body["data"] == {
        "path": "s3://b/run/weights/last.pt",
        "epoch": 1,
        "best": "s3://b/run/weights/best.pt",
    }
    assert (beat.body["epoch"], beat.body["metrics"]) == (1, {"val/top1": 10.0})
    assert reporter.metrics == {"val/top1": 10.0}


def test_a_refused_keepalive_stops_training(callback_server: CallbackServer) -> None:
    answers = iter([202, 403])
    callback_server.responder = lambda kind, body: next(answers, 403)
    stop = StopFlag()
    with _client(callback_server) as client:
        reporter = ProgressReporter(client, stop, epochs=3, keepalive_s=0.05)
        reporter.start()
        deadline = time.monotonic() + 10
        while stop.refused is None and time.monotonic() < deadline:
            time.sleep(0.02)
        reporter.close()

    assert isinstance(stop.refused, CallbackRefused)
    assert stop.refused.status_code == 403
    assert len(callback_server.snapshot()) == 2, "nothing sent after the refusal"
