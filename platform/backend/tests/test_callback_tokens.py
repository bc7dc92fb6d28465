"""Callback tokens end to end: they expire, serve one purpose, and survive a key rotation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from trainyard.callbacks.tokens import SigningKeys, issue
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

from .support import CALLBACK_SECRET, callback, heartbeat, serving, start_attempt, submit

KEYS = SigningKeys.of("k1", CALLBACK_SECRET)


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


@asynccontextmanager
async def api_with(
    settings: BackendSettings, **changes: object
) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database, its settings changed by `changes`."""
    changed = BackendSettings.model_validate({**settings.model_dump(), **changes})
    async with serving(create_app(changed)) as client:
        yield client


async def test_the_token_expires_at_the_jobs_deadline_plus_the_grace(
    api: httpx.AsyncClient, settings: BackendSettings, job: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"])

    expires_at = int(token.split(".")[3])
    submitted = time.time()
    deadline = submitted + settings.max_run_duration_s + settings.callback_token_grace_s
    assert deadline - 60 < expires_at <= deadline


async def test_an_expired_token_is_401_and_changes_nothing(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    await start_attempt(api, job["id"])
    expired = issue(KEYS, job["id"], 1, int(time.time()) - 1)

    response = await callback(api, job["id"], "heartbeat", expired, heartbeat(1))

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["state"] != "RUNNING"


async def test_a_genuine_token_of_another_purpose_is_401(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    await start_attempt(api, job["id"])
    later = int(time.time()) + 3600
    other_purpose = issue(KEYS, job["id"], 1, later, purpose="artifact-read")

    response = await callback(api, job["id"], "heartbeat", other_purpose, heartbeat(1))

    assert response.status_code == 401
    assert "not a 'callback' token" in response.json()["detail"]


async def test_rotating_the_key_while_a_trainer_runs_fails_no_callback(
    api: httpx.AsyncClient, settings: BackendSettings, job: dict[str, Any]
) -> None:
    running = await start_attempt(api, job["id"])
    assert (await callback(api, job["id"], "heartbeat", running, heartbeat(0))).status_code == 202
    rotation = {
        "callback_key_id": "k2",
        "callback_secret": SecretStr("the new callback secret"),
        "callback_previous_secrets": {"k1": SecretStr(CALLBACK_SECRET)},
    }

    async with api_with(settings, **rotation) as rotated:
        # The trainer started before the rotation goes on reporting, epoch after epoch.
        for epoch in (1, 2):
            beat = await callback(rotated, job["id"], "heartbeat", running, heartbeat(epoch))
            assert beat.status_code == 202
        # The next attempt gets a token signed with the new key.
        fresh = await start_attempt(rotated, job["id"], 2)
        assert fresh.split(".")[4] == "k2"
        assert (
            await callback(rotated, job["id"], "heartbeat", fresh, heartbeat(2))
        ).status_code == 202

    finished = {**rotation, "callback_previous_secrets": {}}
    async with api_with(settings, **finished) as after:
        assert (
            await callback(after, job["id"], "heartbeat", fresh, heartbeat(3))
        ).status_code == 202
        # The old key is gone: what it signed is refused.
        assert (
            await callback(after, job["id"], "event", running, {"type": "log"})
        ).status_code == 401
