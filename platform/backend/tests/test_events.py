"""The job timeline: one monotonic seq per job, no gaps, stored with every change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .support import INTERNAL_HEADERS, callback, events, heartbeat, move, start_attempt, submit


async def test_concurrent_writers_get_consecutive_seqs_without_gaps(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])

    async def worker_event(n: int) -> int:
        response = await api.post(
            f"/internal/v1/jobs/{job['id']}/events",
            json={"type": "log", "message": f"line {n}"},
            headers=INTERNAL_HEADERS,
        )
        return response.status_code

    async def trainer_beat(n: int) -> int:
        return (await callback(api, job["id"], "heartbeat", token, heartbeat(n % 3))).status_code

    answers = await asyncio.gather(
        *(worker_event(n) for n in range(15)), *(trainer_beat(n) for n in range(15))
    )

    assert set(answers) == {202}
    timeline = await events(api, job["id"])
    seqs = [e["seq"] for e in timeline]
    # 1 (submitted) + 1 (attempt) + 15 + 15 + 1 (RUNNING)
    assert seqs == list(range(1, 34))
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["last_seq"] == 33


async def test_events_after_seq_returns_only_newer_events(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    for state in ("VALIDATING", "STARTING"):
        assert (await move(api, job["id"], state)).status_code == 200

    newer = await events(api, job["id"], after_seq=1)

    assert [(e["seq"], e["data"]["to"]) for e in newer] == [(2, "VALIDATING"), (3, "STARTING")]
    assert await events(api, job["id"], after_seq=3) == []


async def test_the_events_of_an_unknown_job_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/jobs/job_nope/events")).status_code == 404
