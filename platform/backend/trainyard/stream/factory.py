"""The one place that picks the event bus: Redis when `redis_url` is set, else in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trainyard.core.settings import BackendSettings
from trainyard.stream.bus import EventBus
from trainyard.stream.inproc import InProcessBus
from trainyard.stream.redis import RedisBus


@asynccontextmanager
async def open_bus(settings: BackendSettings) -> AsyncIterator[EventBus]:
    """The bus for these settings, started, and closed when the block ends."""
    if settings.redis_url is None:
        yield InProcessBus(max_queue=settings.stream_queue_size)
        return
    bus = RedisBus(
        settings.redis_url,
        channel_prefix=settings.redis_channel_prefix,
        max_queue=settings.stream_queue_size,
        timeout_s=settings.redis_timeout_s,
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
