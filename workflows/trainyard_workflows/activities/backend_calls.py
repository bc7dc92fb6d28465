"""Calls the watch makes without letting a hiccup end it: heartbeating while a step runs, and
events to the job's timeline that are logged, not raised, when the backend cannot take them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from trainyard_workflows.activities.log_shipping import heartbeat
from trainyard_workflows.backend_client import BackendClient, BackendError

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def heartbeating(work: Awaitable[T], every_s: float) -> T:
    """Await `work` while heartbeating every `every_s`, for steps that may outlast the
    activity's heartbeat timeout."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every_s)
            if done:
                return task.result()
            heartbeat()
    finally:
        task.cancel()


async def post_event_quietly(
    backend: BackendClient, job_id: str, type_: str, message: str, data: dict[str, object]
) -> None:
    """Store an event on the job's timeline; a refusal or an outage is logged, not raised."""
    try:
        await backend.post_event(job_id, type_, message, dict(data))
    except BackendError as error:
        logger.warning("job %s: could not post %s event: %s", job_id, type_, error)


async def quietly(ask: Awaitable[T], job_id: str, every_s: float, fallback: T) -> T:
    """The launcher's answer (heartbeating while it comes), or `fallback` when its API
    hiccups: the next poll asks again."""
    try:
        return await heartbeating(ask, every_s)
    except Exception as error:
        logger.warning("job %s: launcher query failed: %s", job_id, error)
        return fallback
