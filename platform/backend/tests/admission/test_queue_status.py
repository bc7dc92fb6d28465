"""Why queued, through the API, on both tiers: a QUEUED job's read carries its place, what
holds it and an estimated start; its stream gets a `queue` event when an admission pass moves
it, and none when a pass changes nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx

from ..support import INTERNAL_HEADERS, callback, events, get_job, heartbeat, move, start_attempt
from .test_admission_queue import ONE_CPU_SLOT, _ask, _report, _validated


def _queue_events(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["type"] == "queue"]


async def _running(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """A job holding the only CPU slot, RUNNING with an ETA of 20 s (heartbeat of epoch 1/3)."""
    job_id = await _validated(api, body)
    assert (await _ask(api, job_id))["admitted"]
    token = await start_attempt(api, job_id)
    assert (await callback(api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    return job_id


async def _two_queued(api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str, str]:
    await _report(api, ONE_CPU_SLOT)
    running = await _running(api, body)
    first = await _validated(api, body)
    assert (await _ask(api, first))["position"] == 1
    second = await _validated(api, body)
    assert (await _ask(api, second))["position"] == 2
    return running, first, second


async def _until(condition: Any) -> None:
    for _ in range(100):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_queued_jobs_read_with_their_place_hold_reason_and_estimated_start(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    running, first, second = await _two_queued(api, job_body)

    before = datetime.now().astimezone()
    one, two = await get_job(api, first), await get_job(api, second)

    assert (await get_job(api, running))["queue"] is None
    assert one["queue"]["position"] == 1
    assert two["queue"]["position"] == 2
    assert one["queue"]["hold"] == two["queue"]["hold"] == "capacity"
    assert one["queue"]["reason"] == "waiting for a CPU slot: 0 of 1 free"
    assert two["queue"]["reason"] == "waiting for a CPU slot: 0 of 1 free, 1 run ahead in the queue"
    # The running job's heartbeat said 20 s to go: the first starts then; nothing running
    # frees a second slot, so the second's start is unknown.
    starts = datetime.fromisoformat(one["queue"]["estimated_start"])
    assert before + timedelta(seconds=15) < starts < before + timedelta(seconds=25)
    assert two["queue"]["estimated_start"] is None

    page = (await api.get("/v1/jobs", params={"state": "QUEUED"})).json()
    assert {job["id"]: job["queue"]["position"] for job in page["items"]} == {first: 1, second: 2}
    everything = (await api.get("/v1/jobs")).json()["items"]
    assert [job["queue"] is None for job in everything] == [False, False, True]


async def test_each_queued_job_gets_a_queue_event_with_its_first_place(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    _, first, second = await _two_queued(api, job_body)

    one = _queue_events(await events(api, first))
    two = _queue_events(await events(api, second))

    assert [e["data"] for e in one] == [
        {
            "position": 1,
            "gpus_ahead": 0,
            "hold": "capacity",
            "reason": "waiting for a CPU slot: 0 of 1 free",
        }
    ]
    assert [e["data"]["position"] for e in two] == [2]
    assert two[0]["message"] == two[0]["data"]["reason"]
    assert two[0]["source"] == "api"
    # After its state event: a client reads QUEUED, then its place.
    kinds = [e["type"] for e in await events(api, second)]
    assert kinds[-2:] == ["state", "queue"]


async def test_a_pass_that_changes_nothing_writes_no_queue_event(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    _, first, second = await _two_queued(api, job_body)
    seqs = [(await get_job(api, job_id))["last_seq"] for job_id in (first, second)]

    # A capacity report runs a pass (in the background, after its commit); a recheck another.
    await _report(api, ONE_CPU_SLOT)
    assert (await _ask(api, second))["position"] == 2
    await asyncio.sleep(0.3)

    assert [(await get_job(api, job_id))["last_seq"] for job_id in (first, second)] == seqs


async def test_when_the_first_is_admitted_the_second_moves_up_with_a_queue_event(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    running, first, second = await _two_queued(api, job_body)

    assert (await move(api, running, "FAILED", "boom")).status_code == 200

    async def moved_up() -> bool:
        return len(_queue_events(await events(api, second))) == 2

    await _until(moved_up)
    latest = _queue_events(await events(api, second))[-1]
    assert latest["data"] == {
        "position": 1,
        "gpus_ahead": 0,
        "hold": "capacity",
        "reason": "waiting for a CPU slot: 0 of 1 free",
    }
    assert latest["message"] == "waiting for a CPU slot: 0 of 1 free"
    # The admitted one gets none: its next event is its start.
    assert len(_queue_events(await events(api, first))) == 1
    admitted = (await get_job(api, first))["queue"]
    assert admitted is not None  # QUEUED until its workflow starts it
    assert (admitted["position"], admitted["hold"]) == (0, "")
    assert (await get_job(api, second))["queue"]["position"] == 1


async def test_a_recheck_after_the_pass_that_admitted_it_adds_no_queue_event(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # A queued job's recheck after the pass that admitted it: no queue event, admitted.
    running, first, _ = await _two_queued(api, job_body)
    assert (await move(api, running, "FAILED", "boom")).status_code == 200

    async def admitted() -> bool:
        response = await api.post(f"/internal/v1/jobs/{first}/admission", headers=INTERNAL_HEADERS)
        answer: dict[str, Any] = response.json()
        return bool(answer["admitted"])

    await _until(admitted)
    assert len(_queue_events(await events(api, first))) == 1


async def test_a_trainer_cannot_forge_a_queue_event(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id = await _validated(api, job_body)
    token = await start_attempt(api, job_id)
    forged = {"type": "queue", "message": "#1", "data": {"position": 1, "reason": "trust me"}}

    response = await callback(api, job_id, "event", token, forged)

    assert response.status_code == 422, response.text
    assert _queue_events(await events(api, job_id)) == []
