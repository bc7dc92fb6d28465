"""The queue on the embedded platform, with real tiny trainings: one CPU slot, so a second job
waits QUEUED (position 1, saying why) and starts by itself when the first ends; a job cancelled
while it waits ends CANCELLED without ever starting a trainer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .conftest import _config
from .helpers import TERMINAL, read_stream, states_of, submit, wait_for

pytestmark = pytest.mark.xdist_group("e2e")


@pytest.fixture(scope="module")
def one_slot_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {
        "TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())]),
        "TRAINYARD_CPU_RUN_SLOTS": "1",
    }
    embedded = EmbeddedPlatform(_config(tmp_path_factory.mktemp("one-slot"), env))
    try:
        embedded.start()
        with httpx.Client(base_url=embedded.config.api_url, timeout=30) as client:
            yield client
    finally:
        embedded.stop()


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
