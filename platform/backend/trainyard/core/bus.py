"""The event bus interface.

The bus carries events that are already committed to the database, from the request that
stored them to every live stream of the same job. It is a best-effort fan-out, not a store:
a subscriber that misses something (it lagged, or it subscribed late) recovers from the
database by `seq`. Implementations (in `trainyard.stream`): `inproc.InProcessBus` (one API
process) and `redis.RedisBus` (API replicas sharing Redis pub/sub); `stream.factory.open_bus`
picks one from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

# An event as the API shows it: {seq, job_id, type, source, message, data, created_at},
# JSON-ready (the bus may cross process boundaries).
Event = dict[str, Any]


class SubscriberOverflowed(Exception):
    """The subscriber fell too far behind and events were dropped for it.

    Raised by the subscription's iterator; the consumer should resume from the database
    after the last `seq` it handled.
    """


class SubscriptionInterrupted(Exception):
    """Events may have been missed (the bus lost its connection), but the subscription lives on.

    Raised by the subscription's iterator; the consumer should re-read the database after the
    last `seq` it handled and then keep iterating the same subscription. While the bus stays
    disconnected it is raised again every few seconds, so consumers poll the database meanwhile.
    """


class EventBus(Protocol):
    async def readiness(self) -> dict[str, str]:
        """Named checks for /readyz ("ok" or why not); empty when the bus has no dependency."""
        ...

    async def publish(self, job_id: str, event: Event) -> None:
        """Deliver `event` to every current subscriber of `job_id`.

        Never blocks on a slow subscriber: one that cannot keep up is marked overflowed.
        Called only after the event's transaction committed.
        """
        ...

    def subscribe(self, job_id: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Receive the events published for `job_id` from now on, in publication order.

        Use as `async with bus.subscribe(job_id) as events: async for event in events: ...`.
        The iterator raises `SubscriberOverflowed` once events were dropped for this
        subscriber, and `SubscriptionInterrupted` when events may have been missed; leaving
        the `async with` block unsubscribes.
        """
        ...
