"""Heartbeats of many jobs stored together (group commit, callbacks.ingest): each job keeps its
own gap-free seq, and a refused heartbeat in a batch changes nothing and fails no other."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from trainyard.runtime import Runtime

from .support import (
    DONE_SUCCEEDED,
    INTERNAL_HEADERS,
    callback,
    events,
    heartbeat,
    start_attempt,
    submit,
)


async def test_concurrent_heartbeats_of_several_jobs_keep_per_job_gap_free_seqs(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    jobs = [await submit(api, job_body) for _ in range(3)]
    tokens = [await start_attempt(api, job["id"]) for job in jobs]

    responses = await asyncio.gather(
        *(
            callback(api, job["id"], "heartbeat", token, heartbeat(n % 3, box_loss=float(n)))
            for n in range(12)
            for job, token in zip(jobs, tokens, strict=True)
        )
    )

    assert [r.status_code for r in responses] == [202] * 36
    for job in jobs:
        timeline = await events(api, job["id"])
        assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
        # submitted, attempt, exactly one RUNNING, then the 12 heartbeats
        assert [e["type"] for e in timeline].count("state") == 1
        assert len(timeline) == 2 + 1 + 12
        answered = sorted(r.json()["seq"] for r in responses if r.json()["job_id"] == job["id"])
        assert answered == [e["seq"] for e in timeline if e["type"] == "heartbeat"]
        after = (await api.get(f"/v1/jobs/{job['id']}")).json()
        assert after["state"] == "RUNNING"
        assert after["progress"]["epoch"] == 2  # the newest epoch wins, whatever the order


async def test_a_refused_heartbeat_among_concurrent_ones_changes_nothing_and_fails_no_other(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    live, ended, unstarted = [await submit(api, job_body) for _ in range(3)]
    live_token = await start_attempt(api, live["id"])
    ended_token = await start_attempt(api, ended["id"])
    finished = await callback(api, ended["id"], "done", ended_token, DONE_SUCCEEDED)
    assert finished.status_code == 202
    # The token of attempt 1 once the job moved on to attempt 2: stale.
    stale_token = await start_attempt(api, unstarted["id"])
    assert (await start_attempt(api, unstarted["id"], attempt=2)) != stale_token
    ended_before = await events(api, ended["id"])
    unstarted_before = await events(api, unstarted["id"])

    responses = await asyncio.gather(
        *(callback(api, live["id"], "heartbeat", live_token, heartbeat(1)) for _ in range(5)),
        callback(api, ended["id"], "heartbeat", ended_token, heartbeat(1)),
        callback(api, unstarted["id"], "heartbeat", stale_token, heartbeat(1)),
        *(callback(api, live["id"], "heartbeat", live_token, heartbeat(2)) for _ in range(5)),
    )

    codes = [r.status_code for r in responses]
    assert codes == [202] * 5 + [409, 403] + [202] * 5
    assert await events(api, ended["id"]) == ended_before
    assert await events(api, unstarted["id"]) == unstarted_before
    live_seqs = [e["seq"] for e in await events(api, live["id"])]
    assert live_seqs == list(range(1, 2 + 1 + 10 + 1))


async def test_the_ingest_gives_its_connection_back_once_the_heartbeats_stop(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # On PostgreSQL the ingest keeps one connection while batches follow each other; it must
    # not keep it (a leaked checkout per burst would drain the pool).
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])
    runtime: Runtime = app.state.runtime

    for _ in range(3):  # bursts, with the queue running dry in between
        responses = await asyncio.gather(
            *(callback(api, job["id"], "heartbeat", token, heartbeat(1)) for _ in range(10))
        )
        assert {r.status_code for r in responses} == {202}
        await asyncio.sleep(0)

    for _ in range(100):
        if runtime.db.engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert runtime.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_heartbeats_racing_other_writers_of_their_job_all_land_exactly_once(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # The worker appends events to the same job while heartbeats stream in: on PostgreSQL the
    # ingest's optimistic rounds lose some races and decide those heartbeats again.
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])

    async def worker_note(n: int) -> httpx.Response:
        return await api.post(
            f"/internal/v1/jobs/{job['id']}/events",
            json={"type": "note", "message": f"note {n}"},
            headers=INTERNAL_HEADERS,
        )

    responses = await asyncio.gather(
        *(
            call
            for n in range(15)
            for call in (
                callback(api, job["id"], "heartbeat", token, heartbeat(1)),
                worker_note(n),
            )
        )
    )

    assert {r.status_code for r in responses} == {202}
    timeline = await events(api, job["id"])
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    kinds = [e["type"] for e in timeline]
    assert (kinds.count("heartbeat"), kinds.count("note")) == (15, 15)
    answered = sorted(r.json()["seq"] for r in responses if r.json()["type"] == "heartbeat")
    assert answered == [e["seq"] for e in timeline if e["type"] == "heartbeat"]
