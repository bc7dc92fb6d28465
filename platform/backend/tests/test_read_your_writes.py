"""The unit of work commits before the response starts, so a client that POSTs and then GETs
at once always sees its write (on any database, whatever its locking)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from trainyard.core.settings import BackendSettings


class CommittedRowsAtResponseStart:
    """ASGI wrapper that, as each response starts, counts the committed rows of a table
    through a separate plain connection (a SQLite WAL reader, or a PostgreSQL READ COMMITTED
    one, sees only committed data)."""

    def __init__(self, app: FastAPI, settings: BackendSettings, table: str) -> None:
        self.app = app
        self.settings = settings
        self.table = table
        self.counts: list[int] = []

    async def committed_rows(self) -> int:
        query = f"SELECT COUNT(*) FROM {self.table}"
        if self.settings.is_sqlite:
            with sqlite3.connect(self.settings.data_dir / "trainyard.db") as connection:
                (count,) = connection.execute(query).fetchone()
            return int(count)
        dsn = self.settings.database_url.replace("postgresql+asyncpg", "postgresql")
        connection = await asyncpg.connect(dsn)
        try:
            return int(await connection.fetchval(query))
        finally:
            await connection.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def observing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counts.append(await self.committed_rows())
            await send(message)

        await self.app(scope, receive, observing_send)


@pytest.fixture
async def observed(
    app: FastAPI, settings: BackendSettings
) -> AsyncIterator[tuple[httpx.AsyncClient, CommittedRowsAtResponseStart]]:
    observer = CommittedRowsAtResponseStart(app, settings, "job_events")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=observer), base_url="http://trainyard.test"
    ) as client:
        yield client, observer


async def test_a_submission_is_committed_before_its_response_starts(
    observed: tuple[httpx.AsyncClient, CommittedRowsAtResponseStart], job_body: dict[str, Any]
) -> None:
    client, observer = observed

    created = await client.post("/v1/jobs", json=job_body)

    assert created.status_code == 201
    assert observer.counts == [1]  # the job's first event was already durable


async def test_a_cancel_is_committed_before_its_response_starts(
    observed: tuple[httpx.AsyncClient, CommittedRowsAtResponseStart], job_body: dict[str, Any]
) -> None:
    client, observer = observed
    job_id = (await client.post("/v1/jobs", json=job_body)).json()["id"]

    cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")

    assert cancelled.status_code == 202
    assert observer.counts == [1, 3]  # + cancel_requested + CANCELLED


async def test_a_job_is_readable_the_moment_its_submission_answers_over_real_http(
    live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    for _ in range(5):
        created = await live_api.post("/v1/jobs", json=job_body)
        assert created.status_code == 201

        fetched = await live_api.get(f"/v1/jobs/{created.json()['id']}")

        assert fetched.status_code == 200, fetched.text
