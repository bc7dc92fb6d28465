"""Behaviour that depends on the tier: concurrent writers of one job on each database, and
what the API does when the Redis it is configured with is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from trainyard.cli.embedded import free_local_port
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

from .conftest import empty_postgres_database, make_settings, run_aside, run_server
from .support import DONE_SUCCEEDED, callback, events, heartbeat, start_attempt, submit


async def test_concurrent_callbacks_to_one_job_get_gap_free_unique_seqs(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])

    responses = await asyncio.gather(
        *(callback(api, job["id"], "heartbeat", token, heartbeat(1)) for _ in range(30)),
        *(
            callback(api, job["id"], "event", token, {"type": "log", "message": f"m{i}"})
            for i in range(30)
        ),
    )

    assert [r.status_code for r in responses] == [202] * 60
    seqs = [e["seq"] for e in await events(api, job["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    # Each callback got its own seq (plus submission, attempt and RUNNING events).
    assert len({r.json()["seq"] for r in responses}) == 60


@pytest.fixture
def redis_down_settings(
    tmp_path: Path, temporal_address: str, postgres_database: str
) -> BackendSettings:
    run_aside(empty_postgres_database(postgres_database))
    return make_settings(
        tmp_path / "data",
        temporal_address,
        database_url=postgres_database,
        redis_url=f"redis://127.0.0.1:{free_local_port()}/0",  # nothing listens there
        redis_timeout_s=0.2,
    )


@pytest.fixture
async def app_without_redis(redis_down_settings: BackendSettings) -> AsyncIterator[FastAPI]:
    application = create_app(redis_down_settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_not_ready_while_redis_is_down_and_the_reason_names_it(
    app_without_redis: FastAPI,
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_without_redis), base_url="http://trainyard.test"
    ) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["detail"] == "redis down"
    assert ready.json()["checks"]["redis"] == "unreachable"


async def test_callbacks_are_stored_and_streamed_from_the_database_while_redis_is_down(
    redis_down_settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    with run_server(create_app(redis_down_settings)) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as api:
            job = await submit(api, job_body)
            token = await start_attempt(api, job["id"])
            url = f"{server.ws_url}/v1/jobs/{job['id']}/stream"
            async with connect(url) as ws:
                beat = await callback(api, job["id"], "heartbeat", token, heartbeat(1))
                done = await callback(api, job["id"], "done", token, DONE_SUCCEEDED)
                frames = [json_frame(m) async for m in ws]

            assert (beat.status_code, done.status_code) == (202, 202)
            assert frames == await events(api, job["id"])
            assert ws.close_code == 1000


def json_frame(message: str | bytes) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(message)
    return frame
