"""The CLI says where a queued job stands: `trainyard jobs` shows its place, `watch` prints its
`queue` events and keeps the place beside the state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from trainyard.cli.app import app
from trainyard.cli.progress_view import JobProgress
from trainyard.cli.settings import get_cli_settings

from .test_admission_queue import ONE_CPU_SLOT, _ask, _report, _validated


@pytest.fixture
def cli(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TRAINYARD_API_URL", live_server.http_url)
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    get_cli_settings.cache_clear()
    yield CliRunner()
    get_cli_settings.cache_clear()


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
async def test_jobs_lists_a_queued_jobs_place_beside_its_state(
    cli: CliRunner, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(live_api, ONE_CPU_SLOT)
    running = await _validated(live_api, job_body)
    assert (await _ask(live_api, running))["admitted"]
    queued = await _validated(live_api, job_body)
    assert (await _ask(live_api, queued))["position"] == 1

    listed = cli.invoke(app, ["jobs"])

    assert listed.exit_code == 0, listed.output
    # Only the queued job has a place (the table's width, so its wrapping, is the console's).
    assert listed.output.count("QUEUED #1") == 1
    assert listed.output.count("#") == 1


def _queue_event(seq: int, position: int, reason: str) -> dict[str, Any]:
    data = {"position": position, "gpus_ahead": 0, "hold": "capacity", "reason": reason}
    return {"seq": seq, "type": "queue", "message": reason, "data": data}


def test_watch_prints_queue_events_and_shows_the_place_until_the_job_leaves_the_queue() -> None:
    view = JobProgress("job_1")
    view.apply({"seq": 1, "type": "state", "data": {"from": "VALIDATING", "to": "QUEUED"}})

    line = view.apply(_queue_event(2, 2, "waiting for a CPU slot: 0 of 1 free, 1 run ahead"))

    assert line == "queued: #2 — waiting for a CPU slot: 0 of 1 free, 1 run ahead"
    assert view.state_label() == "QUEUED #2"
    view.apply(_queue_event(3, 1, "waiting for a CPU slot: 0 of 1 free"))
    assert view.state_label() == "QUEUED #1"
    view.apply({"seq": 4, "type": "state", "data": {"from": "QUEUED", "to": "STARTING"}})
    assert view.queue_position is None
    assert view.state_label() == "STARTING"


def test_watch_says_the_place_is_unknown_when_kueue_does_not_tell_it() -> None:
    reason = "Kueue, LocalQueue trainyard: waiting for quota"
    data = {"position": 0, "gpus_ahead": 0, "hold": "kueue", "reason": reason}

    line = JobProgress("job_1").apply({"seq": 2, "type": "queue", "message": reason, "data": data})

    assert line == f"queued: place unknown — {reason}"
