"""Admission with Kueue, on both tiers: the worker's capacity report says Kueue admits trainers,
so the ledger leaves the cluster's capacity to it and keeps to quotas; the worker's reports of
where Kueue holds an attempt move the job to QUEUED with that place, and back on admission."""

from __future__ import annotations

from typing import Any

import httpx

from ..support import INTERNAL_HEADERS, callback, events, get_job, heartbeat, move, start_attempt
from .test_admission_queue import ONE_CPU_SLOT, _ask, _report, _validated

KUEUE_ONE_SLOT = {**ONE_CPU_SLOT, "queue": "kueue"}
PLACE = {
    "attempt": 1,
    "position": 3,
    "gpus_ahead": 4,
    "reason": "Kueue, LocalQueue trainyard: insufficient unused quota for nvidia.com/gpu",
}


async def _starting(api: httpx.AsyncClient, job_body: dict[str, Any]) -> tuple[str, str]:
    """A job admitted by the platform whose attempt 1 was launched: (id, callback token)."""
    job_id = await _validated(api, job_body)
    assert (await _ask(api, job_id))["admitted"]
    assert (await move(api, job_id, "STARTING")).status_code == 200
    token = await start_attempt(api, job_id, 1)
    return job_id, token


def _path(job_id: str) -> str:
    return f"/internal/v1/jobs/{job_id}/external-queue"


async def test_with_kueue_the_ledger_leaves_capacity_to_it_but_keeps_quotas(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, KUEUE_ONE_SLOT)
    jobs = [await _validated(api, job_body) for _ in range(3)]
    # One CPU slot, yet every job is admitted: Kueue holds them on the cluster instead.
    assert all([(await _ask(api, job_id))["admitted"] for job_id in jobs])

    assert (await api.put("/v1/projects/default/quota", json={"runs": 3})).status_code == 200
    over_quota = await _validated(api, job_body)
    answer = await _ask(api, over_quota)
    assert answer["admitted"] is False
    assert answer["state"] == "QUEUED"


async def test_kueue_holding_an_attempt_queues_the_job_with_kueues_place_until_admitted(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id, _ = await _starting(api, job_body)

    held = await api.put(_path(job_id), json=PLACE, headers=INTERNAL_HEADERS)
    again = await api.put(_path(job_id), json=PLACE, headers=INTERNAL_HEADERS)

    assert (held.status_code, again.status_code) == (204, 204)
    job = await get_job(api, job_id)
    assert job["state"] == "QUEUED"
    assert job["queue"] == {
        "position": 3,
        "gpus_ahead": 4,
        "hold": "kueue",
        "reason": PLACE["reason"],
        "estimated_start": None,
    }
    queue_events = [e for e in await events(api, job_id) if e["type"] == "queue"]
    assert [e["data"]["position"] for e in queue_events] == [3]  # the repeat added none

    released = await api.delete(_path(job_id), params={"attempt": 1}, headers=INTERNAL_HEADERS)

    assert released.status_code == 204
    job = await get_job(api, job_id)
    assert (job["state"], job["queue"]) == ("STARTING", None)


async def test_a_report_about_another_attempt_or_after_the_trainer_ran_changes_nothing(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id, token = await _starting(api, job_body)

    stale = {**PLACE, "attempt": 2}
    assert (await api.put(_path(job_id), json=stale, headers=INTERNAL_HEADERS)).status_code == 204
    assert (await get_job(api, job_id))["state"] == "STARTING"

    assert (await callback(api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    # Read before Kueue let the trainer start, arriving after it reported: ignored.
    assert (await api.put(_path(job_id), json=PLACE, headers=INTERNAL_HEADERS)).status_code == 204
    assert (await get_job(api, job_id))["state"] == "RUNNING"


async def test_the_platforms_own_preemption_still_refuses_the_stopped_trainer(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    """Only a job Kueue holds lets its QUEUED attempt report; one the platform preempted back
    to the queue does not (its trainer was stopped)."""
    job_id, token = await _starting(api, job_body)
    assert (await api.put(_path(job_id), json=PLACE, headers=INTERNAL_HEADERS)).status_code == 204
    requeue = {"attempt": 1, "by": "job_urgent"}
    response = await api.post(
        f"/internal/v1/jobs/{job_id}/requeue", json=requeue, headers=INTERNAL_HEADERS
    )
    assert response.status_code == 200, response.text

    refused = await callback(api, job_id, "heartbeat", token, heartbeat(1))

    assert refused.status_code == 403
    assert (await get_job(api, job_id))["queue"]["hold"] != "kueue"


async def test_external_queue_reports_need_the_internal_token_and_a_live_job(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id, _ = await _starting(api, job_body)

    assert (await api.put(_path(job_id), json=PLACE)).status_code == 401
    assert (await api.delete(_path(job_id), params={"attempt": 1})).status_code == 401
    bad = await api.put(_path(job_id), json={**PLACE, "position": -1}, headers=INTERNAL_HEADERS)
    assert bad.status_code == 422
    assert (await move(api, job_id, "CANCELLED")).status_code == 200
    ended = await api.put(_path(job_id), json=PLACE, headers=INTERNAL_HEADERS)
    assert ended.status_code == 409
