from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from trainer_kit.callbacks import (
    CallbackClient,
    CallbackRefused,
    CallbackRejected,
    CallbackUnavailable,
    clean_metrics,
)
from trainer_kit.testing.callback_server import CallbackServer


def _client(url: str, **kwargs: Any) -> CallbackClient:
    return CallbackClient(url, "job_1", "tok", sleep=lambda _: None, **kwargs)


def test_posts_json_with_bearer_token(callback_server: CallbackServer) -> None:
    with _client(callback_server.url) as client:
        client.heartbeat(epoch=1, epochs=3, metrics={"a": 1}, elapsed_s=2.5, eta_s=None)
        client.event("log", "hello", {"x": 1})
        client.done("succeeded", metrics={"m": 0.5}, artifacts={"weights": "/w/best.pt"})

    calls = callback_server.snapshot()
    assert [c.path for c in calls] == [
        "/v1/jobs/job_1/heartbeat",
        "/v1/jobs/job_1/event",
        "/v1/jobs/job_1/done",
    ]
    assert {c.authorization for c in calls} == {"Bearer tok"}
    assert calls[0].body == {
        "epoch": 1,
        "epochs": 3,
        "metrics": {"a": 1.0},
        "elapsed_s": 2.5,
        "eta_s": None,
    }
    assert calls[1].body == {"type": "log", "message": "hello", "data": {"x": 1}}
    assert calls[2].body == {
        "status": "succeeded",
        "reason": None,
        "metrics": {"m": 0.5},
        "artifacts": {"weights": "/w/best.pt"},
    }


def test_the_server_can_tell_which_process_sent_a_callback(
    callback_server: CallbackServer,
) -> None:
    callback_server.track_senders = True
    code = (
        "import sys; from trainer_kit.callbacks import CallbackClient\n"
        "with CallbackClient(sys.argv[1], 'job_1', 'tok') as c: c.event('log', 'child')"
    )
    child = subprocess.Popen([sys.executable, "-c", code, callback_server.url])
    assert child.wait(timeout=60) == 0
    with _client(callback_server.url) as client:
        client.event("log", "parent")

    assert [(c.body["message"], c.pid) for c in callback_server.snapshot()] == [
        ("child", child.pid),
        ("parent", os.getpid()),
    ]


def test_retries_5xx_until_accepted(callback_server: CallbackServer) -> None:
    answers = iter([503, 500, 202])
    callback_server.responder = lambda kind, body: next(answers)

    with _client(callback_server.url) as client:
        client.event("log", "x")

    assert [c.status for c in callback_server.snapshot()] == [503, 500, 202]


@pytest.mark.parametrize("status", [401, 403, 409])
def test_refusal_stops_all_further_callbacks(callback_server: CallbackServer, status: int) -> None:
    callback_server.responder = lambda kind, body: status

    with _client(callback_server.url) as client:
        with pytest.raises(CallbackRefused) as info:
            client.heartbeat(epoch=0, epochs=1, metrics={}, elapsed_s=0, eta_s=None)
        assert info.value.status_code == status
        assert client.refused is info.value
        with pytest.raises(CallbackRefused):
            client.done("failed", reason="x")

    assert len(callback_server.snapshot()) == 1, "never retried, nothing sent afterwards"


def test_other_4xx_is_rejected_without_retry(callback_server: CallbackServer) -> None:
    answers = iter([422, 202])
    callback_server.responder = lambda kind, body: next(answers)

    with _client(callback_server.url) as client:
        with pytest.raises(CallbackRejected, match="422"):
            client.event("log", "x")
        client.event("log", "still usable")

    assert [c.status for c in callback_server.snapshot()] == [422, 202]


def test_unreachable_backend_gives_up_after_the_retry_window() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    attempts: list[float] = []

    with CallbackClient(
        f"http://127.0.0.1:{port}",
        "job_1",
        "tok",
        retry_for_s=0.3,
        max_backoff_s=0.05,
        sleep=attempts.append,
    ) as client:
        with pytest.raises(CallbackUnavailable, match="not delivered"):
            client.event("log", "x")
        assert client.refused is None

    assert attempts, "connection errors are retried"


def test_clean_metrics_keeps_finite_numbers_only() -> None:
    raw = {"a": 1, "b": 0.5, "nan": float("nan"), "inf": float("inf"), "s": "x", "flag": True}
    assert clean_metrics(raw) == {"a": 1.0, "b": 0.5}


def test_done_409_after_an_ambiguous_failure_counts_as_delivered(
    callback_server: CallbackServer,
) -> None:
    answers = iter([502, 409])  # stored, then the proxy failed; the retry finds the token spent
    callback_server.responder = lambda kind, body: next(answers)

    with _client(callback_server.url) as client:
        client.done("succeeded")
        assert client.refused is None


def test_done_409_straight_away_is_a_refusal(callback_server: CallbackServer) -> None:
    callback_server.responder = lambda kind, body: 409

    with _client(callback_server.url) as client, pytest.raises(CallbackRefused):
        client.done("succeeded")


def test_job_id_is_quoted_in_the_path(callback_server: CallbackServer) -> None:
    with CallbackClient(callback_server.url, "job/../x", "tok") as client:
        client.event("log", "x")
    assert callback_server.snapshot()[0].path == "/v1/jobs/job%2F..%2Fx/event"


class _FakeTime:
    """The kit's clock and sleep: each sleep moves the clock on at once, so a test covers an
    outage of minutes (as the client sees it) in milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_retries_go_on_past_the_old_60_s_window_with_a_capped_backoff(
    callback_server: CallbackServer,
) -> None:
    # An API outage of 111 s lost a checkpoint_saved when the client gave up after ~60 s.
    fake = _FakeTime()
    callback_server.responder = lambda kind, body: 503 if fake.now < 300 else 202

    with CallbackClient(
        callback_server.url, "job_1", "tok", clock=fake.clock, sleep=fake.sleep
    ) as client:
        client.event("checkpoint_saved", "epoch 3", {"epoch": 3})
        client.done("succeeded")

    assert fake.now >= 300
    assert max(fake.sleeps) == 8.0  # backoff capped: the first try after the outage is soon
    assert fake.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert [c.status for c in callback_server.of("event")][-1] == 202
    assert [c.status for c in callback_server.of("done")] == [202]


def test_a_retry_window_can_still_bound_the_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fake = _FakeTime()

    with (
        CallbackClient(
            f"http://127.0.0.1:{port}",
            "job_1",
            "tok",
            retry_for_s=60,
            clock=fake.clock,
            sleep=fake.sleep,
        ) as client,
        pytest.raises(CallbackUnavailable, match=r"after 6\d s"),
    ):
        client.event("log", "x")
