"""GPU-hours metering: RUNNING intervals from the `state` events, cut at the month's bounds
(UTC), a running job counted up to now, retries counted per interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from trainyard.admission.usage import Window, month_of, project_gpu_hours, running_seconds
from trainyard.auth.models import DEFAULT_PROJECT_ID
from trainyard.jobs.models import JobEvent

from ..support import move, submit
from .test_admission_queue import runtime_of_app

APRIL = month_of(datetime(2026, 4, 15, 12, tzinfo=UTC))


def at(day: int, hour: int, month: int = 4) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_the_month_is_the_calendar_month_in_utc_up_to_now() -> None:
    assert Window(at(1, 0), at(15, 12)) == APRIL
    assert month_of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)).start == at(1, 0, month=12)


def test_only_the_running_part_inside_the_month_counts() -> None:
    across_the_1st = [(at(31, 23, month=3), "RUNNING"), (at(1, 2), "SUCCEEDED")]
    validating_then_running = [
        (at(2, 0), "VALIDATING"),
        (at(2, 1), "QUEUED"),
        (at(2, 3), "RUNNING"),
        (at(2, 4), "FAILED"),
    ]
    retried = [
        (at(3, 0), "RUNNING"),
        (at(3, 1), "RETRYING"),
        (at(3, 5), "RUNNING"),
        (at(3, 6), "SUCCEEDED"),
    ]
    still_running = [(at(15, 10), "RUNNING")]
    before = [(at(30, 1, month=3), "RUNNING"), (at(30, 2, month=3), "SUCCEEDED")]

    assert running_seconds(across_the_1st, APRIL) == 2 * 3600
    assert running_seconds(validating_then_running, APRIL) == 3600
    assert running_seconds(retried, APRIL) == 2 * 3600
    assert running_seconds(still_running, APRIL) == 2 * 3600
    assert running_seconds(before, APRIL) == 0


async def test_a_projects_gpu_hours_come_from_its_jobs_state_events(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    two_gpus = (await submit(api, {**job_body, "gpus": 2}))["id"]
    on_cpu = (await submit(api, job_body))["id"]
    for job_id in (two_gpus, on_cpu):
        for state in ("VALIDATING", "STARTING", "RUNNING", "SUCCEEDED"):
            assert (await move(api, job_id, state)).status_code == 200, state
    # Its run, moved to the night of March 31st (two GPUs from 23:00 to 02:00).
    when = {"RUNNING": at(31, 23, month=3), "SUCCEEDED": at(1, 2)}
    async with runtime_of_app(app).db.session() as session:
        rows = await session.execute(select(JobEvent).where(JobEvent.type == "state"))
        for event in rows.scalars():
            event.created_at = when.get(event.data["to"], at(31, 22, month=3))

    async with runtime_of_app(app).db.session() as session:
        april = await project_gpu_hours(session, DEFAULT_PROJECT_ID, at(15, 12))
        march = await project_gpu_hours(
            session, DEFAULT_PROJECT_ID, at(31, 23, month=3) + timedelta(minutes=30)
        )

    assert april == 2 * 2.0  # 2 GPUs × 2 hours in April; the CPU job costs nothing
    assert march == 2 * 0.5
