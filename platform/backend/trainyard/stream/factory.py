"""The one place that picks the event bus: Redis when `redis_url` is set, else in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trainyard.core.bus import EventBus
from trainyard.core.settings import BackendSettings
from trainyard.stream.inproc import InProcessBus
from trainyard.stream.redis import RedisBus

# Events a job's subscription may hold. Its one consumer is the job's fan-out loop, which
# drains it without awaiting anything (fanout.py), so this fills only if the process stalls;
# a slow WebSocket client is bounded by its own backlog (settings.stream_queue_size).
SUBSCRIPTION_QUEUE_SIZE = 10_000


@asynccontextmanager
async def open_bus(settings: BackendSettings) -> AsyncIterator[EventBus]:
    """The bus for these settings, started, and closed when the block ends."""
    if settings.redis_url is None:
        yield InProcessBus(max_queue=SUBSCRIPTION_QUEUE_SIZE)
        return
    bus = RedisBus(
        settings.redis_url,
        channel_prefix=settings.redis_channel_prefix,
        max_queue=SUBSCRIPTION_QUEUE_SIZE,
        timeout_s=settings.redis_timeout_s,
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
