"""The heartbeat ingest's driver-level rounds (callbacks.ingest_sql), on both tiers: what they
write reads back through the ORM exactly as the ORM's own writes do, a failed round leaves
nothing behind and the connection usable, and another writer never slips past a round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.callbacks.ingest_sql import (
    ConnectionLease,
    IngestRound,
    JobUpdate,
    LockedJob,
    PostgresRound,
)
from trainyard.core.db import create_engine
from trainyard.jobs.models import Job, JobEvent
from trainyard.runtime import Runtime

from .support import INTERNAL_HEADERS, start_attempt, submit

PROGRESS = {"epoch": 1, "epochs": 3, "metrics": {}}


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


@asynccontextmanager
async def ingest_round(engine: AsyncEngine) -> AsyncIterator[IngestRound]:
    """One round on a pooled connection of `engine` (given back afterwards)."""
    lease = ConnectionLease(engine)
    try:
        async with lease.round() as round_:
            yield round_
    finally:
        await lease.release()


Writes = tuple[Sequence[JobUpdate], Sequence[dict[str, Any]]]


async def _round(
    engine: AsyncEngine, ids: list[str], writes: Callable[[dict[str, LockedJob]], Writes]
) -> tuple[set[str], dict[str, LockedJob]]:
    """One round whose decision is `writes` of the jobs read; the ids stored and the jobs."""
    read: dict[str, LockedJob] = {}

    def decide(jobs: list[LockedJob]) -> Writes:
        read.update((job.id, job) for job in jobs)
        return writes(read)

    async with ingest_round(engine) as round_:
        stored = await round_.run(ids, decide)
    return stored, read


async def test_written_rows_read_back_through_the_orm_unchanged(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    await start_attempt(api, job["id"])
    db = _runtime(app).db
    at = datetime(2026, 11, 23, 20, 1, 2, 345678, tzinfo=UTC)
    progress = {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.5, "ünïcode": 1e-9}}

    def writes(jobs: dict[str, LockedJob]) -> Writes:
        seq = jobs[job["id"]].last_seq + 1
        return (
            [JobUpdate(job["id"], "RUNNING", seq, progress, at, seq - 1)],
            [
                {
                    "job_id": job["id"],
                    "seq": seq,
                    "type": "heartbeat",
                    "source": "trainer",
                    "message": "epoch 1/3",
                    "data": progress,
                    "created_at": at,
                }
            ],
        )

    stored_ids, read = await _round(db.engine, [job["id"]], writes)
    assert stored_ids == {job["id"]}
    locked = read[job["id"]]

    async with db.session() as session:
        stored = await session.get(Job, job["id"])
        assert stored is not None
        assert (stored.state, stored.last_seq, stored.progress) == (
            "RUNNING",
            locked.last_seq + 1,
            progress,
        )
        assert stored.last_heartbeat_at == at
        assert stored.last_heartbeat_at.tzinfo is not None
        event = (
            await session.execute(
                select(JobEvent).where(
                    JobEvent.job_id == job["id"], JobEvent.seq == locked.last_seq + 1
                )
            )
        ).scalar_one()
        assert (event.data, event.created_at, event.message) == (progress, at, "epoch 1/3")
    assert (locked.state, locked.attempt, locked.progress) == ("PENDING", 1, None)


async def test_one_batch_writes_several_jobs_and_their_events_each_in_place(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    first, second = await submit(api, job_body), await submit(api, job_body)
    db = _runtime(app).db
    at = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)

    def beat(job_id: str, seq: int, epoch: int) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "seq": seq,
            "type": "heartbeat",
            "source": "trainer",
            "message": f"epoch {epoch}/3",
            "data": {"epoch": epoch},
            "created_at": at,
        }

    def writes(jobs: dict[str, LockedJob]) -> Writes:
        one, two = jobs[first["id"]].last_seq, jobs[second["id"]].last_seq
        return (
            [
                JobUpdate(first["id"], "RUNNING", one + 2, {"epoch": 2}, at, one),
                JobUpdate(second["id"], "RUNNING", two + 1, {"epoch": 1}, at, two),
            ],
            [
                beat(first["id"], one + 1, 1),
                beat(second["id"], two + 1, 1),
                beat(first["id"], one + 2, 2),
            ],
        )

    stored_ids, read = await _round(db.engine, [first["id"], second["id"]], writes)
    assert stored_ids == {first["id"], second["id"]}
    one, two = read[first["id"]].last_seq, read[second["id"]].last_seq

    async with db.session() as session:
        jobs = {job.id: job for job in (await session.execute(select(Job))).scalars()}
        events = (
            await session.execute(select(JobEvent).where(JobEvent.created_at == at))
        ).scalars()
        assert {(e.job_id, e.seq, e.message) for e in events} == {
            (first["id"], one + 1, "epoch 1/3"),
            (second["id"], two + 1, "epoch 1/3"),
            (first["id"], one + 2, "epoch 2/3"),
        }
    assert (jobs[first["id"]].last_seq, jobs[first["id"]].progress) == (one + 2, {"epoch": 2})
    assert (jobs[second["id"]].last_seq, jobs[second["id"]].progress) == (two + 1, {"epoch": 1})
    assert jobs[first["id"]].last_heartbeat_at == at


async def test_a_failed_batch_leaves_nothing_and_the_next_one_goes_through(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    db = _runtime(app).db
    at = datetime.now(UTC)
    before = (await api.get(f"/v1/jobs/{job['id']}")).json()

    def event(seq: int) -> dict[str, Any]:
        return {
            "job_id": job["id"],
            "seq": seq,
            "type": "note",
            "source": "trainer",
            "message": "",
            "data": {},
            "created_at": at,
        }

    def duplicate_seq(jobs: dict[str, LockedJob]) -> Writes:
        seq = jobs[job["id"]].last_seq
        update = JobUpdate(job["id"], "STARTING", seq + 1, {"epoch": 9}, at, seq)
        return [update], [event(seq)]  # seq already taken

    with pytest.raises(Exception, match=r"(?i)unique"):
        await _round(db.engine, [job["id"]], duplicate_seq)

    after = (await api.get(f"/v1/jobs/{job['id']}")).json()
    assert (after["state"], after["progress"]) == (before["state"], before["progress"])

    def next_seq(jobs: dict[str, LockedJob]) -> Writes:
        locked = jobs[job["id"]]
        seq = locked.last_seq + 1
        return [JobUpdate(job["id"], before["state"], seq, locked.progress, at, seq - 1)], [
            event(seq)
        ]

    stored_ids, _ = await _round(db.engine, [job["id"]], next_seq)
    assert stored_ids == {job["id"]}
    timeline = (await api.get(f"/v1/jobs/{job['id']}/events")).json()
    assert [e["type"] for e in timeline["items"]][-1] == "note"


async def test_a_job_another_writer_changed_during_a_round_is_never_overwritten(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    db = _runtime(app).db
    at = datetime.now(UTC)
    postgres = db.engine.dialect.name == "postgresql"
    loop = asyncio.get_running_loop()
    other: list[asyncio.Task[httpx.Response]] = []

    def worker_records_an_event() -> None:
        # The worker records an event meanwhile: it takes the job's next seq.
        other.append(
            asyncio.create_task(
                api.post(
                    f"/internal/v1/jobs/{job['id']}/events",
                    json={"type": "note", "message": "worker"},
                    headers=INTERNAL_HEADERS,
                )
            )
        )

    def heartbeat(read: LockedJob) -> Writes:
        seq = read.last_seq + 1
        return [JobUpdate(job["id"], "RUNNING", seq, PROGRESS, at, read.last_seq)], [
            {
                "job_id": job["id"],
                "seq": seq,
                "type": "heartbeat",
                "source": "trainer",
                "message": "epoch 1/3",
                "data": {"epoch": 1},
                "created_at": at,
            }
        ]

    async with ingest_round(db.engine) as round_:
        if postgres:
            # Read, let the other writer go (no lock is held), then the guarded write.
            postgres_round = cast(PostgresRound, round_)
            [read] = await postgres_round.read_jobs([job["id"]])
            worker_records_an_event()
            assert (await other[0]).status_code == 202
            stored = await postgres_round.store(*heartbeat(read))
        else:
            # SQLite decides on aiosqlite's thread, inside the round's transaction: the other
            # writer starts there, mid-round, on the event loop.
            def decide(jobs: list[LockedJob]) -> Writes:
                loop.call_soon_threadsafe(worker_records_an_event)
                return heartbeat(jobs[0])

            stored = await round_.run([job["id"]], decide)
    if postgres:
        # The guard saw the row change: nothing of the round was written, the caller retries.
        assert stored == set()
    else:
        # SQLite: the round held the write lock, so the other writer waited for it.
        assert stored == {job["id"]}
        assert (await other[0]).status_code == 202

    timeline = (await api.get(f"/v1/jobs/{job['id']}/events")).json()["items"]
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    assert [e["type"] for e in timeline].count("note") == 1
    after = (await api.get(f"/v1/jobs/{job['id']}")).json()
    assert after["last_seq"] == len(timeline)
    assert after["state"] == ("PENDING" if postgres else "RUNNING")


async def test_a_sqlite_connection_returned_inside_a_transaction_is_rolled_back(
    tmp_path: Path,
) -> None:
    # The SQLite pool skips its rollback-on-return (a thread hop each time) unless a transaction
    # is open: one left open must still be rolled back, or its write lock would stay held.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reset.db'}")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        async with engine.connect() as connection:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            await driver.execute("BEGIN IMMEDIATE")
            await driver.execute("INSERT INTO t VALUES (1)")
        async with engine.begin() as connection:
            count = (await connection.exec_driver_sql("SELECT count(*) FROM t")).scalar()
        assert count == 0
    finally:
        await engine.dispose()
