"""trainer_kit.progress: heartbeats, events and the keep-alive thread's life cycle."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.control import StopFlag
from trainer_kit.progress import HeartbeatReporter
from trainer_kit.testing.callback_server import CallbackServer


class _Reporter(HeartbeatReporter):
    def record(self, epoch: int, metrics: dict[str, float]) -> None:
        with self._state_lock:
            self._epoch, self._metrics = epoch, metrics

    def _keepalive(self) -> None:
        while not self._halt.wait(0.05):
            try:
                if self._beat_due():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                self._refused(refusal)
                return


def _client(server: CallbackServer, retry_for_s: float = 5.0) -> CallbackClient:
    return CallbackClient(server.url, "job_1", "tok", retry_for_s=retry_for_s, sleep=lambda _: None)


def test_first_heartbeat_carries_the_resumed_epoch_then_keepalives_follow(
    callback_server: CallbackServer,
) -> None:
    with _client(callback_server) as client:
        reporter = _Reporter(client, StopFlag(), epochs=5, keepalive_s=0.1)
        reporter.start(epoch=2, metrics={"val/loss": 0.5, "bad": float("nan")})
        try:
            assert callback_server.wait_for(lambda calls: len(calls) >= 3, timeout=10)
        finally:
            reporter.close()

    first, *keepalives = [c.body for c in callback_server.of("heartbeat")]
    assert (first["epoch"], first["epochs"], first["metrics"]) == (2, 5, {"val/loss": 0.5})
    assert first["eta_s"] is None
    assert all((k["epoch"], k["metrics"]) == (2, {}) for k in keepalives)
    assert reporter.epoch == 2
    assert reporter.metrics == {"val/loss": 0.5}
    assert reporter.elapsed_s() > 0


def test_a_refused_keepalive_is_recorded_on_the_stop_flag(callback_server: CallbackServer) -> None:
    stop = StopFlag()
    with _client(callback_server) as client:
        reporter = _Reporter(client, stop, epochs=2, keepalive_s=0.05)
        reporter.start()
        callback_server.responder = lambda kind, body: 409
        try:
            assert callback_server.wait_for(
                lambda calls: bool(calls) and calls[-1].status == 409, timeout=10
            )
        finally:
            reporter.close()
    assert stop.refused is not None
    with pytest.raises(CallbackRefused):
        reporter.event("log", "after the refusal")


def test_undelivered_events_are_logged_not_raised(
    callback_server: CallbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    callback_server.responder = lambda kind, body: 503
    with _client(callback_server, retry_for_s=0) as client:
        reporter = _Reporter(client, StopFlag(), epochs=1, keepalive_s=60)
        reporter.event("log", "hello")
        reporter.heartbeat(with_metrics=True)
        reporter.close()
    assert "event log not delivered" in caplog.text
    assert "heartbeat not delivered" in caplog.text


def test_a_restored_checkpoint_is_announced(callback_server: CallbackServer) -> None:
    with _client(callback_server) as client:
        reporter = _Reporter(client, StopFlag(), epochs=4, keepalive_s=60)
        reporter.checkpoint_restored("s3://b/jobs/j/attempt-1/run/weights/last.pt", 2)
        reporter.close()
    [event] = [c.body for c in callback_server.of("event")]
    assert event == {
        "type": "checkpoint_restored",
        "message": "resuming after epoch 2 from s3://b/jobs/j/attempt-1/run/weights/last.pt",
        "data": {"path": "s3://b/jobs/j/attempt-1/run/weights/last.pt", "epoch": 2},
    }


def test_a_reporter_without_a_client_sends_nothing() -> None:
    reporter = _Reporter(None, StopFlag(), epochs=3, keepalive_s=0.01)
    reporter.start(epoch=1, metrics={"m": 1.0})
    reporter.heartbeat(with_metrics=True)
    reporter.event("log", "nobody hears this")
    reporter.close()
    assert (reporter.epoch, reporter.metrics) == (1, {"m": 1.0})


def test_training_never_waits_for_the_backend_and_callbacks_keep_their_order(
    callback_server: CallbackServer,
) -> None:
    answer = threading.Event()

    def slow(kind: str, body: dict[str, Any]) -> int:
        answer.wait(10)  # the backend takes its time (or restarts)
        return 202

    callback_server.responder = slow
    with _client(callback_server) as client:
        reporter = _Reporter(client, StopFlag(), epochs=3, keepalive_s=60)
        reporter.event("trainer_started", "started")
        for epoch in (1, 2):
            reporter.record(epoch, {"loss": 1.0 / epoch})
            reporter.event("checkpoint_saved", f"epoch {epoch}", {"epoch": epoch})
            reporter.heartbeat(with_metrics=True)
        # All queued while the backend has not answered the first one yet.
        assert len(callback_server.snapshot()) == 0
        answer.set()
        reporter.close()

    sent = [(c.kind, c.body.get("type"), c.body.get("epoch")) for c in callback_server.snapshot()]
    assert sent == [
        ("event", "trainer_started", None),
        ("event", "checkpoint_saved", None),
        ("heartbeat", None, 1),
        ("event", "checkpoint_saved", None),
        ("heartbeat", None, 2),
    ]
    assert [c.body["metrics"] for c in callback_server.of("heartbeat")] == [
        {"loss": 1.0},
        {"loss": 0.5},
    ]


def test_a_refusal_met_by_the_delivery_thread_stops_training_and_ends_sending(
    callback_server: CallbackServer,
) -> None:
    callback_server.responder = lambda kind, body: 409 if body.get("type") == "refused" else 202
    stop = StopFlag()
    with _client(callback_server) as client:
        reporter = _Reporter(client, stop, epochs=3, keepalive_s=60)
        reporter.event("refused", "the backend says no")
        reporter.event("after", "never sent")
        reporter.close()
        with pytest.raises(CallbackRefused):
            stop.check()  # at the next batch boundary
        with pytest.raises(CallbackRefused):
            reporter.heartbeat(with_metrics=False)

    assert [c.body["type"] for c in callback_server.of("event")] == ["refused"]
