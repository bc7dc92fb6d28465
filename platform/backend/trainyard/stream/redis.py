"""The Redis event bus of the production tier: API replicas relay each other's events.

Channels: one per job, `<prefix>:job:<job id>`. A replica subscribes to a job's channel only
while one of its own WebSocket clients follows that job, so a replica receives the events of
the jobs it shows and nothing else (one shared channel would make every replica decode every
event of the cluster). Each replica keeps ONE pub/sub connection for all its channels and
fans out to local subscribers through bounded buffers, so a slow client never slows the
connection, the other clients or the publisher.

The bus is best-effort; the database is the source of truth. When the pub/sub connection
drops, every subscription is told that it may have missed events (`SubscriptionInterrupted`)
and is told so again every `poll_s` while Redis stays away, so streams keep delivering from
the database; once the connection is back and every channel is subscribed again, they are
told one last time and re-read the database after their last seq: no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from trainyard.core.bus import Event, SubscriberOverflowed, SubscriptionInterrupted
from trainyard.observability.metrics import BUS_PUBLISH_FAILURES

logger = logging.getLogger(__name__)

_DOWN_ERRORS = (RedisError, OSError, TimeoutError)
_MAX_BACKOFF_S = 5.0


class _Subscription:
    """A bounded buffer filled by the bus; never blocks the bus."""

    def __init__(self, bus: RedisBus, max_queue: int) -> None:
        self._bus = bus
        self._max_queue = max_queue
        self._items: deque[Event] = deque()
        self._signal = asyncio.Event()
        self.overflowed = False
        self.interrupted = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self._max_queue:
            self.overflowed = True
            self._items.clear()  # useless once one was dropped: the consumer resumes by seq
        else:
            self._items.append(event)
        self._signal.set()

    def interrupt(self) -> None:
        self.interrupted = True
        self._signal.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self.overflowed:
                raise SubscriberOverflowed
            if self.interrupted:
                self.interrupted = False
                raise SubscriptionInterrupted
            if self._items:
                return self._items.popleft()
            self._signal.clear()
            if self._bus.connected:
                await self._signal.wait()
                continue
            try:
                await asyncio.wait_for(self._signal.wait(), self._bus.poll_s)
            except TimeoutError:
                raise SubscriptionInterrupted from None  # Redis is away: poll the database


class RedisBus:
    """Pub/sub fan-out across API processes; see the module docstring."""

    def __init__(
        self,
        url: str,
        channel_prefix: str = "trainyard",
        max_queue: int = 1000,
        timeout_s: float = 1.0,
        poll_s: float = 2.0,
    ) -> None:
        self.poll_s = poll_s
        self.connected = False
        self._prefix = f"{channel_prefix}:job:"
        self.client_name = f"trainyard-relay-{channel_prefix}-{os.getpid()}"
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        # Publishing and readiness: a pooled client whose every call is bounded by timeout_s.
        self._client: Redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        # The pub/sub connection: no hidden retries, the listener reconnects itself (and so
        # knows when events may have been lost). Named, so operators can spot it in CLIENT LIST.
        self._listen_client: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            client_name=self.client_name,
        )
        self._local: dict[str, set[_Subscription]] = {}
        self._pubsub: PubSub | None = None
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; waits briefly for Redis but starts without it (it is retried)."""
        first_connection = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(first_connection))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_connection.wait(), self._timeout_s)

    async def close(self) -> None:
        self._closing = True
        listener = self._listener
        # Python 3.11's asyncio.wait_for can swallow a cancellation that lands just as the call
        # it waits on completes (cpython gh-86296): the listener would go on reconnecting and
        # close would wait forever. So cancel until it has ended; `_closing` stops its loop.
        while listener is not None and not listener.done():
            listener.cancel()
            await asyncio.wait({listener}, timeout=1.0)
        await self._drop_pubsub()
        await self._client.aclose()
        await self._listen_client.aclose()

    # EventBus ------------------------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        try:
            await self._client.ping()
        except _DOWN_ERRORS as exc:
            return {"redis": f"unreachable: {exc or type(exc).__name__}"}
        return {"redis": "ok"}

    async def publish(self, job_id: str, event: Event) -> None:
        # Never raises: the event is already stored and streams fill gaps from the database.
        try:
            await self._client.publish(self._prefix + job_id, json.dumps(event))
        except _DOWN_ERRORS as exc:
            BUS_PUBLISH_FAILURES.inc()
            logger.warning(
                "Redis publish of event %s of job %s failed (%s); streams read it from the "
                "database",
                event.get("seq"),
                job_id,
                exc or type(exc).__name__,
            )

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        subscription = _Subscription(self, self._max_queue)
        subscribers = self._local.setdefault(job_id, set())
        subscribers.add(subscription)
        try:
            if self.connected:
                try:
                    await self._subscribe_channel(job_id)
                except _DOWN_ERRORS:
                    subscription.interrupt()  # the listener resubscribes once Redis is back
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers and self._local.get(job_id) is subscribers:
                del self._local[job_id]
                await self._unsubscribe_channel(job_id)

    def subscriber_count(self, job_id: str) -> int:
        return len(self._local.get(job_id, ()))

    # pub/sub connection --------------------------------------------------------------------

    async def _subscribe_channel(self, job_id: str) -> None:
        """SUBSCRIBE and wait for Redis to confirm it: from then on nothing published is missed."""
        channel = self._prefix + job_id
        waiting = self._confirming.get(channel)
        if waiting is None:
            pubsub = self._pubsub
            if pubsub is None:
                raise ConnectionError("not connected to Redis")
            waiting = asyncio.get_running_loop().create_future()
            # A failure nobody waits for any more is not worth an "never retrieved" warning.
            waiting.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._confirming[channel] = waiting
            try:
                await pubsub.subscribe(channel)
            except BaseException:
                self._confirming.pop(channel, None)
                raise
        await asyncio.wait_for(asyncio.shield(waiting), self._timeout_s)

    async def _unsubscribe_channel(self, job_id: str) -> None:
        pubsub = self._pubsub
        if pubsub is None or not self.connected:
            return
        # On failure the listener notices the broken connection itself.
        with contextlib.suppress(*_DOWN_ERRORS):
            await pubsub.unsubscribe(self._prefix + job_id)

    async def _listen(self, first_connection: asyncio.Event) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                await self._connect()
                first_connection.set()
                backoff = 0.1
                await self._read_until_broken()
            except asyncio.CancelledError:
                raise
            except _DOWN_ERRORS as exc:
                if self.connected:
                    logger.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
            except Exception:
                logger.exception("Redis pub/sub listener failed; reconnecting")
            self._disconnected()
            await self._drop_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _connect(self) -> None:
        pubsub = self._listen_client.pubsub()
        self._pubsub = pubsub
        # One SUBSCRIBE for every channel with local subscribers, plus a control channel so the
        # connection is in subscribed mode even when nobody follows a job.
        channels = [f"{self._prefix}__control__", *(self._prefix + j for j in self._local)]
        await asyncio.wait_for(pubsub.subscribe(*channels), self._timeout_s)
        pending = set(channels)
        deadline = time.monotonic() + self._timeout_s
        while pending:
            message = await pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.01))
            if message is None and time.monotonic() >= deadline:
                raise TimeoutError("Redis did not confirm the subscriptions")
            if message is not None and message["type"] == "subscribe":
                pending.discard(_text(message["channel"]))
        self.connected = True
        logger.info("Redis pub/sub connected (%d job channels)", len(channels) - 1)
        # Whatever was published while we were away is in the database.
        for subscribers in self._local.values():
            for subscription in subscribers:
                subscription.interrupt()

    async def _read_until_broken(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        idle_s = 5.0
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=idle_s)
            if message is None:
                if pinged:
                    raise TimeoutError("Redis pub/sub connection went silent")
                await pubsub.ping()  # a silent connection may be a dead one: ask
                pinged = True
                continue
            pinged = False
            kind = message["type"]
            if kind == "message":
                self._dispatch(_text(message["channel"]), message["data"])
            elif kind == "subscribe":
                waiting = self._confirming.pop(_text(message["channel"]), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        job_id = channel.removeprefix(self._prefix)
        subscribers = self._local.get(job_id)
        if not subscribers:
            return
        try:
            event: Event = json.loads(data)
        except ValueError:
            logger.warning("ignoring a malformed message on %s", channel)
            return
        for subscription in list(subscribers):
            subscription.offer(event)

    def _disconnected(self) -> None:
        self.connected = False
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_exception(ConnectionError("Redis pub/sub connection lost"))
        self._confirming.clear()
        for subscribers in self._local.values():
            for subscription in subscribers:
                subscription.interrupt()

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_DOWN_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
