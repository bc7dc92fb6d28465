"""trainer_kit.outbox: while the backend does not answer, the queue keeps every epoch
heartbeat and event, coalesces keep-alives and drops (and counts) log events beyond its
capacity."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.outbox import Outbox
from trainer_kit.progress import HeartbeatReporter
from trainer_kit.testing.callback_server import CallbackServer


class _Reporter(HeartbeatReporter):
    def record(self, epoch: int) -> None:
        with self._state_lock:
            self._epoch, self._metrics = epoch, {"loss": 1.0 / epoch}

    def _keepalive(self) -> None:  # the test sends keep-alives itself
        self._halt.wait()


def test_an_outage_keeps_epochs_and_events_coalesces_keepalives_and_drops_log_lines(
    callback_server: CallbackServer,
) -> None:
    back = threading.Event()

    def retry_soon(_: float) -> None:
        back.wait(0.01)

    def down_until_back(kind: str, body: dict[str, Any]) -> int:
        return 202 if back.is_set() else 503

    callback_server.responder = down_until_back
    stop = StopFlag()
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=retry_soon) as client:
        reporter = _Reporter(client, stop, epochs=40, keepalive_s=60)
        reporter._outbox = Outbox(stop, capacity=20, dropped_notice=reporter._dropped_notice)
        reporter.event("trainer_started", "started")  # held in the client's retries
        assert callback_server.wait_for(lambda calls: len(calls) > 0, timeout=5)
        for epoch in range(1, 41):
            reporter.heartbeat(with_metrics=False)  # keep-alives within the epoch
            reporter.heartbeat(with_metrics=False)
            reporter.event("log", f"line {epoch}")
            reporter.record(epoch)
            reporter.event("checkpoint_saved", f"epoch {epoch}", {"epoch": epoch})
            reporter.heartbeat(with_metrics=True)
        reporter.heartbeat(with_metrics=False)
        # 80 must-keep callbacks are over the capacity: kept all the same, with one keep-alive
        # and the log lines queued before the queue filled up.
        dropped = reporter._outbox.dropped
        assert 0 < dropped < 40
        assert reporter._outbox.pending == 80 + 1 + (40 - dropped)
        back.set()
        reporter.close()

    stored = [c for c in callback_server.snapshot() if c.status == 202]
    epochs = [c.body["epoch"] for c in stored if c.kind == "heartbeat" and c.body["metrics"]]
    checkpoints = [
        c.body["data"]["epoch"] for c in stored if c.body.get("type") == "checkpoint_saved"
    ]
    assert epochs == list(range(1, 41))
    assert checkpoints == list(range(1, 41))
    assert len([c for c in stored if c.kind == "heartbeat" and not c.body["metrics"]]) == 1
    logs = [c.body["message"] for c in stored if c.body.get("type") == "log"]
    (notice,) = [c.body for c in stored if c.body.get("type") == "warning"]
    assert len(logs) + notice["data"]["dropped_log_events"] == 40
    assert logs == [f"line {n}" for n in range(1, len(logs) + 1)]  # the newest were dropped
    assert stored[0].body["type"] == "trainer_started"


def test_a_keepalive_replaces_the_pending_one_in_order() -> None:
    sent: list[str] = []
    outbox = Outbox(StopFlag())
    hold = threading.Event()

    def held() -> None:
        hold.wait(5)

    outbox.submit("hold", held)
    for name, keep in [("k1", "latest"), ("e1", "always"), ("k2", "latest"), ("e2", "always")]:
        outbox.submit(name, partial(sent.append, name), keep)  # type: ignore[arg-type]
    hold.set()
    outbox.close()
    assert sent == ["e1", "k2", "e2"]
