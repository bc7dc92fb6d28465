"""The throughput bench's parts (`make bench`): stopping the platform's sessions and nothing
else, the callback relay that answers the trainer while the API is stopped, and the figures it
takes from a run's epochs. A wrong part would print a wrong figure, not fail, so each is tested
against real processes and a real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.callback_relay import CallbackRelay
from bench.platform_freeze import PlatformFreezer
from bench.session_cpu import child_sessions, session_processes, session_wait_s
from bench.trainer_throughput import (
    OFF,
    ON,
    RESUMING,
    WARM_UP,
    CaseFigures,
    EpochEnd,
    phase_of,
    verdict,
)

_SLEEPER = "import time\nwhile True: time.sleep(0.01)"


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@contextmanager
def _sessions(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` processes, each leading its own session (as the platform's components do)."""
    processes = [
        subprocess.Popen([sys.executable, "-c", _SLEEPER], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_freezer_stops_the_given_sessions_only_and_continues_them_on_leaving() -> None:
    def stopped(*processes: subprocess.Popen[bytes]) -> list[bool]:
        return [_state(process.pid) == "T" for process in processes]

    with _sessions(3) as (api, worker, trainer):
        with PlatformFreezer({api.pid, worker.pid}) as freezer:
            freezer.freeze()
            _wait_for(lambda: stopped(api, worker) == [True, True])
            assert stopped(trainer) == [False]
            freezer.thaw()
            _wait_for(lambda: stopped(api, worker) == [False, False])
            freezer.freeze()
            _wait_for(lambda: stopped(api, worker) == [True, True])
        _wait_for(lambda: stopped(api, worker) == [False, False])


class _Api:
    """A stand-in for the API: records what reaches it; answers only once `open` is set."""

    def __init__(self, status: int = 202) -> None:
        self.received: list[tuple[str, str | None, dict[str, Any]]] = []
        self.open = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.open.wait(10)
                api.received.append((self.path, self.headers.get("Authorization"), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_relay_answers_at_once_while_the_api_does_not_and_forwards_in_order() -> None:
    api = _Api()
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        with (
            CallbackRelay(api.url, lambda path, body: seen.append((path, body))) as relay,
            httpx.Client(base_url=relay.url, headers={"Authorization": "Bearer t0k"}) as trainer,
        ):
            started = time.monotonic()
            for epoch in (1, 2, 3):
                response = trainer.post("/v1/jobs/job_1/heartbeat", json={"epoch": epoch})
                assert response.status_code == 202
            assert time.monotonic() - started < 5  # not held up by the API that does not answer
            assert [body["epoch"] for _, body in seen] == [1, 2, 3]
            assert not relay.drained()

            time.sleep(0.3)
            api.open.set()
            _wait_for(relay.drained)
        assert api.received == [
            ("/v1/jobs/job_1/heartbeat", "Bearer t0k", {"epoch": epoch}) for epoch in (1, 2, 3)
        ]
        assert relay.refusals == []
        # How long the API took to answer each: the first waited for it to open.
        assert len(relay.answers) == 3
        assert relay.answers[0][1] >= 0.3
        assert [sent for sent, _ in relay.answers] == sorted(sent for sent, _ in relay.answers)
    finally:
        api.close()


def test_the_relay_keeps_what_the_api_refused() -> None:
    api = _Api(status=409)
    api.open.set()
    try:
        with CallbackRelay(api.url, lambda path, body: None) as relay, httpx.Client() as trainer:
            trainer.post(f"{relay.url}/v1/jobs/job_1/done", json={"status": "succeeded"})
            _wait_for(relay.drained)
        assert relay.refusals == ["/v1/jobs/job_1/done: 409 {}"]
    finally:
        api.close()


def test_epochs_go_warm_up_then_resuming_on_off() -> None:
    phases = [phase_of(epoch) for epoch in range(1, 3 * 2 + 4)]

    assert phases == [WARM_UP, RESUMING, ON, OFF, RESUMING, ON, OFF, RESUMING, ON]


def _ends(
    durations: list[float], cpu_per_epoch: list[float], wait_per_epoch: list[float]
) -> dict[int, EpochEnd]:
    ends, elapsed, cpu, waited = {}, 0.0, 0.0, 0.0
    for epoch, (duration, used, wait) in enumerate(
        zip(durations, cpu_per_epoch, wait_per_epoch, strict=True), 1
    ):
        elapsed, cpu, waited = elapsed + duration, cpu + used, waited + wait
        ends[epoch] = EpochEnd(epoch, elapsed, 1000 + elapsed, {7: cpu}, waited)
    return ends


def test_each_off_epoch_is_compared_with_its_on_neighbours() -> None:
    # warm-up, then (resuming, on, off) twice and a last resuming, on: on epochs train 100
    # samples in 1.0 s then 1.2 s (a drift), off epochs in 1.0 s; resuming ones are not timed.
    durations = [9.0, 2.0, 1.0, 1.0, 2.0, 1.2, 1.0, 2.0, 1.2]
    cpu = [0.5, 0.4, 0.1, 0.0, 0.4, 0.12, 0.0, 0.4, 0.12]
    # The trainer's threads wait for a CPU 0.02 s/s when on, 0.01 s/s when off.
    wait = [0.5, 0.3, 0.02, 0.01, 0.3, 0.024, 0.01, 0.3, 0.024]
    # The API answered callbacks sent in on epochs 3 (1011 .. 1012 s) and 6 (1015 .. 1016.2)
    # in 5 and 7 ms; not its answers while on: those sent in off and resuming epochs, and one
    # sent at the end of an on epoch and answered after the off one.
    answers = [(1011.5, 0.005), (1012.5, 2.0), (1015.6, 0.007), (1016.1, 3.0), (1017.5, 1.5)]

    figures = CaseFigures.of(_ends(durations, cpu, wait), 100, {7: "api"}, answers)

    assert figures.epochs(OFF) == [4, 7]
    assert figures.ratios() == pytest.approx([(100 + 100 / 1.2) / 2 / 100, 100 / 1.2 / 100])
    assert figures.median_rate(ON) == pytest.approx(100 / 1.2)
    assert figures.pooled_cores(ON) == pytest.approx({"api": 0.34 / 3.4})
    assert figures.pooled_cores(OFF) == {"api": 0.0}
    assert figures.extra_waits() == pytest.approx([0.01, 0.01])
    assert figures.pooled_wait(ON) == pytest.approx(0.02)
    assert figures.answers_s == [0.005, 0.007]


@pytest.mark.parametrize(
    ("mean", "error", "expected"),
    [(1.004, 0.01, "met"), (0.985, 0.004, "MISSED"), (0.974, 0.033, "unresolved")],
)
def test_the_verdict_says_what_the_interval_shows(mean: float, error: float, expected: str) -> None:
    assert verdict(mean, error) == expected


_ONE_CORE = min(os.sched_getaffinity(0))
_PINNED_SPINNER = f"import os\nos.sched_setaffinity(0, {{{_ONE_CORE}}})\nwhile True: pass"


def test_the_trainers_sessions_are_found_and_their_wait_for_a_cpu_read() -> None:
    # Three spinning processes in one session, pinned to one core, each wait for the other two
    # about two thirds of the time; a sleeping session hardly waits at all.
    spin = [sys.executable, "-c", _PINNED_SPINNER]
    leader = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess\nfor _ in range(2): subprocess.Popen({spin!r})\n"
         + _PINNED_SPINNER],
        start_new_session=True,
    )  # fmt: skip
    sleeper = subprocess.Popen([sys.executable, "-c", _SLEEPER], start_new_session=True)
    stays = subprocess.Popen([sys.executable, "-c", _SLEEPER])  # in our session
    try:
        assert {leader.pid, sleeper.pid} <= child_sessions(os.getpid())
        assert stays.pid not in child_sessions(os.getpid())
        _wait_for(lambda: len(list(session_processes({leader.pid}))) == 3)
        before = session_wait_s({leader.pid}), session_wait_s({sleeper.pid})
        time.sleep(1.0)
        after = session_wait_s({leader.pid}), session_wait_s({sleeper.pid})

        assert after[0] - before[0] > 1.5  # ~2 s: 3 × 2/3 of a second (on the CPU: 1 s)
        assert after[1] - before[1] < 0.1
    finally:
        for process in (sleeper, stays):
            process.kill()
            process.wait()
        for pid, _, _ in list(session_processes({leader.pid})):
            os.kill(pid, 9)
        leader.wait()
