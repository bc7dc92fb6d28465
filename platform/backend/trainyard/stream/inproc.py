"""The in-process event bus of the embedded tier (one API process)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trainyard.core.bus import Event, SubscriberOverflowed


class _Subscription:
    """A bounded queue; filling it marks the subscriber overflowed instead of blocking."""

    def __init__(self, max_queue: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_queue)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self.overflowed:
            # Already-queued events are useless once one was dropped: the consumer resumes
            # from the database after the last seq it handled.
            raise SubscriberOverflowed
        return await self._queue.get()


class InProcessBus:
    """Fan-out inside one event loop; each subscriber has its own bounded queue."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._max_queue = max_queue
        self._subscribers: defaultdict[str, set[_Subscription]] = defaultdict(set)

    async def readiness(self) -> dict[str, str]:
        return {}

    async def publish(self, job_id: str, event: Event) -> None:
        for subscription in list(self._subscribers.get(job_id, ())):
            subscription.offer(event)

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        subscription = _Subscription(self._max_queue)
        self._subscribers[job_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[job_id]

    def subscriber_count(self, job_id: str) -> int:
        return len(self._subscribers.get(job_id, ()))
