"""Start-up, readiness and Temporal outages: the app runs on a fresh data dir, says what is
down and recovers when Temporal comes back (jobs stored meanwhile: test_workflow_starts.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import Connection

from trainyard.cli.embedded import free_local_port
from trainyard.core.db import Base, create_engine
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard_testing.temporal import start_dev_server

from .conftest import make_settings
from .support import get_job, submit


async def serve(settings: BackendSettings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test"
        ) as client,
    ):
        yield client


@pytest.fixture
async def api_without_temporal(
    tmp_path: Path, backend_tier: dict[str, object]
) -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on a port that was just free.
    settings = make_settings(tmp_path / "data", f"127.0.0.1:{free_local_port()}", **backend_tier)
    async for client in serve(settings):
        yield client


async def test_a_fresh_data_dir_gets_a_database_with_every_table(
    api: httpx.AsyncClient, settings: BackendSettings
) -> None:
    if settings.is_sqlite:
        assert (settings.data_dir / "trainyard.db").is_file()
    engine = create_engine(settings.database_url)

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            # The migrations create exactly what the models describe.
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_jobs_survive_a_restart_on_the_same_data_dir(
    settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    async for client in serve(settings):
        job = await submit(client, job_body)
    async for client in serve(settings):
        assert (await get_job(client, job["id"]))["id"] == job["id"]


async def test_ready_when_database_and_temporal_answer(
    api: httpx.AsyncClient, settings: BackendSettings
) -> None:
    response = await api.get("/readyz")

    assert response.status_code == 200
    # The Redis bus is a dependency too; the in-process bus is not.
    redis = {"redis": "ok"} if settings.redis_url else {}
    assert response.json()["checks"] == {"database": "ok", "temporal": "ok", **redis}


async def test_alive_but_not_ready_while_temporal_is_down_and_the_why_only_in_the_log(
    api_without_temporal: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    health = await api_without_temporal.get("/healthz")
    with caplog.at_level(logging.WARNING, logger="trainyard.main"):
        ready = await api_without_temporal.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["detail"] == "temporal down"
    assert (body["checks"]["database"], body["checks"]["temporal"]) == ("ok", "unreachable")
    assert "127.0.0.1" not in ready.text  # where it is and why it failed: the log only
    assert "Temporal is unreachable at 127.0.0.1:" in caplog.text


async def test_the_api_connects_once_temporal_comes_up_after_it(
    tmp_path: Path, job_body: dict[str, Any], backend_tier: dict[str, object]
) -> None:
    port = free_local_port()
    settings = make_settings(tmp_path / "data", f"127.0.0.1:{port}", **backend_tier)
    async for client in serve(settings):
        assert (await client.get("/readyz")).status_code == 503
        late = await start_dev_server(port)
        try:
            assert (await client.get("/readyz")).status_code == 200
            job = await submit(client, job_body)
            assert job["state"] == "PENDING"
        finally:
            await late.shutdown()
