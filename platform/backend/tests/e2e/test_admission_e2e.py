"""The queue on the embedded platform, with real tiny trainings: one CPU slot, so a second job
waits QUEUED (position 1, saying why) and starts by itself when the first ends; a job cancelled
while it waits ends CANCELLED without ever starting a trainer."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .conftest import _config
from .helpers import (
    TERMINAL,
    check_resumed_to_success,
    checkpoint_of_epoch,
    read_stream,
    states_of,
    submit,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("e2e")


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    env = {
        "TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())]),
        "TRAINYARD_CPU_RUN_SLOTS": "1",
    }
    embedded = EmbeddedPlatform(_config(tmp_path_factory.mktemp("one-slot"), env))
    try:
        embedded.start()
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def one_slot_api(one_slot: EmbeddedPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=one_slot.config.api_url, timeout=30) as client:
        yield client


def test_with_one_cpu_slot_the_second_job_queues_and_starts_when_the_first_ends(
    one_slot_api: httpx.Client, shapes: GeneratedDataset
) -> None:
    api = one_slot_api
    first = submit(api, shapes.uri, epochs=2)
    wait_for(api, first["id"], lambda job: job["state"] in {"STARTING", "RUNNING"}, 120)
    second = submit(api, shapes.uri, epochs=1)
    third = submit(api, shapes.uri, epochs=1)

    queued = wait_for(api, second["id"], lambda job: job["state"] == "QUEUED", 120)
    assert "CPU" in (queued["reason"] or "")
    wait_for(api, third["id"], lambda job: job["state"] == "QUEUED", 120)
    # The third never starts: cancelled while it waits.
    assert api.post(f"/v1/jobs/{third['id']}/cancel").status_code == 202
    cancelled = wait_for(api, third["id"], lambda job: job["state"] in TERMINAL, 60)
    assert cancelled["state"] == "CANCELLED"
    assert cancelled["attempt"] == 0
    assert api.get(f"/v1/jobs/{second['id']}").json()["state"] == "QUEUED"  # the slot is taken

    events, _ = read_stream(api, second["id"])

    assert states_of(events) == ["VALIDATING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
    first_events, _ = read_stream(api, first["id"])
    assert states_of(first_events)[-1] == "SUCCEEDED"
    # It started only once the first had ended.
    assert _state_at(events, "STARTING") >= _state_at(first_events, "SUCCEEDED")
    assert states_of(read_stream(api, third["id"])[0]) == ["VALIDATING", "QUEUED", "CANCELLED"]


def _state_at(events: list[dict[str, Any]], state: str) -> str:
    at: str = next(e for e in events if e["type"] == "state" and e["data"]["to"] == state)[
        "created_at"
    ]
    return at


def test_queued_jobs_survive_a_restart_of_the_worker_and_of_temporal(
    one_slot: EmbeddedPlatform, one_slot_api: httpx.Client, shapes: GeneratedDataset
) -> None:
    api = one_slot_api
    running = submit(api, shapes.uri, epochs=50)
    wait_for(api, running["id"], lambda job: job["state"] == "RUNNING", 180)
    queued = [submit(api, shapes.uri, epochs=1) for _ in range(2)]
    for job in queued:
        wait_for(api, job["id"], lambda job: job["state"] == "QUEUED", 120)

    for component in ("temporal", "worker"):
        _kill_and_wait_for_restart(one_slot, component)
    _until(lambda: api.get("/readyz").status_code == 200, "the platform ready again")

    # The slot frees: the queued jobs run one after the other, none lost.
    assert api.post(f"/v1/jobs/{running['id']}/cancel").status_code == 202
    finals = [wait_for(api, job["id"], lambda job: job["state"] in TERMINAL, 300) for job in queued]

    assert [final["state"] for final in finals] == ["SUCCEEDED", "SUCCEEDED"]
    first_done = _state_at(read_stream(api, queued[0]["id"])[0], "SUCCEEDED")
    second_events, _ = read_stream(api, queued[1]["id"])
    assert states_of(second_events) == [
        "VALIDATING",
        "QUEUED",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert _state_at(second_events, "STARTING") >= first_done
    assert api.get(f"/v1/jobs/{running['id']}").json()["state"] == "CANCELLED"


def test_a_high_priority_job_preempts_a_running_low_one_which_resumes_and_succeeds(
    one_slot: EmbeddedPlatform, one_slot_api: httpx.Client, shapes: GeneratedDataset
) -> None:
    api = one_slot_api
    # Long enough that it is still training when the urgent job, submitted after its epoch-2
    # checkpoint, has been validated and makes it give way (a few seconds; tiny epochs are fast).
    epochs = 20
    low = submit(api, shapes.uri, epochs=epochs, priority="low")
    checkpoint_of_epoch(api, low["id"], 2)

    urgent = submit(api, shapes.uri, epochs=1, priority="high")

    urgent_final = wait_for(api, urgent["id"], lambda job: job["state"] in TERMINAL, 240)
    assert urgent_final["state"] == "SUCCEEDED"
    _, retried, events = check_resumed_to_success(
        api, one_slot, low["id"], epochs, "train/box_loss"
    )
    [preempted] = [e for e in events if e["type"] == "preempted"]
    assert preempted["data"] == {"by": urgent["id"], "attempt": 1}
    assert retried["data"]["interrupted"] is True
    assert "gave way to" in retried["message"]
    assert states_of(events) == [
        "VALIDATING",
        "STARTING",
        "RUNNING",
        "QUEUED",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
    ]
    # The urgent job started only once the low one had given way.
    urgent_events, _ = read_stream(api, urgent["id"])
    assert _state_at(urgent_events, "STARTING") >= preempted["created_at"]


def _kill_and_wait_for_restart(platform: EmbeddedPlatform, component: str) -> None:
    killed = platform.pids[component]
    os.kill(killed, signal.SIGKILL)
    _until(lambda: platform.pids.get(component) not in (None, killed), f"{component} back")


def _until(condition: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
