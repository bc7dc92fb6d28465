"""The Redis event bus against the real Redis at 127.0.0.1:6379: two bus instances stand for
two API replicas; each test has a channel namespace of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from trainyard.cli.embedded import free_local_port
from trainyard.core.bus import Event, SubscriberOverflowed, SubscriptionInterrupted
from trainyard.stream.redis import RedisBus

from .conftest import REDIS_URL

BusFactory = Callable[..., Awaitable[RedisBus]]


@pytest.fixture
async def make_bus() -> AsyncIterator[BusFactory]:
    prefix = f"test-{uuid.uuid4().hex}"
    buses: list[RedisBus] = []

    async def make(url: str = REDIS_URL, **options: Any) -> RedisBus:
        bus = RedisBus(url, channel_prefix=prefix, **options)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


def event(seq: int) -> Event:
    return {"seq": seq, "job_id": "job_a", "type": "heartbeat", "data": {}}


async def next_event(events: AsyncIterator[Event], within_s: float = 5) -> Event:
    return await asyncio.wait_for(anext(events), within_s)


async def kill_named_client(name: str) -> None:
    """What a Redis restart or a network cut does to a replica's pub/sub connection."""
    admin = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        clients = await admin.client_list(_type="pubsub")
        ids = [client["id"] for client in clients if client.get("name") == name]
        assert ids, f"no pub/sub client named {name}"
        for client_id in ids:
            await admin.client_kill_filter(_id=client_id)
    finally:
        await admin.aclose()


async def test_an_event_published_on_one_replica_reaches_the_subscribers_of_another(
    make_bus: BusFactory,
) -> None:
    publisher, relay = await make_bus(), await make_bus()
    async with relay.subscribe("job_a") as events_a, relay.subscribe("job_b") as events_b:
        await publisher.publish("job_a", event(1))
        await publisher.publish("job_b", {**event(7), "job_id": "job_b"})

        assert await next_event(events_a) == event(1)
        assert (await next_event(events_b))["seq"] == 7  # each job only gets its own


async def test_events_arrive_in_publication_order(make_bus: BusFactory) -> None:
    publisher, relay = await make_bus(), await make_bus()
    async with relay.subscribe("job_a") as events:
        for seq in range(1, 51):
            await publisher.publish("job_a", event(seq))

        assert [(await next_event(events))["seq"] for _ in range(50)] == list(range(1, 51))


async def test_a_subscriber_that_falls_behind_overflows_without_stalling_the_publisher(
    make_bus: BusFactory,
) -> None:
    publisher, relay = await make_bus(), await make_bus(max_queue=5)
    async with relay.subscribe("job_a") as slow, relay.subscribe("job_a") as fast:
        started = time.perf_counter()
        received: list[int] = []
        for seq in range(1, 101):
            await publisher.publish("job_a", event(seq))
            received.append((await next_event(fast))["seq"])  # a client that keeps up
        publishing_s = time.perf_counter() - started

        assert received == list(range(1, 101))
        with pytest.raises(SubscriberOverflowed):
            await next_event(slow)
        assert publishing_s < 5  # nobody waited for the slow subscriber


async def test_leaving_unsubscribes(make_bus: BusFactory) -> None:
    bus = await make_bus()
    async with bus.subscribe("job_a"):
        assert bus.subscriber_count("job_a") == 1
    assert bus.subscriber_count("job_a") == 0


async def test_a_dropped_connection_interrupts_subscriptions_then_delivery_resumes(
    make_bus: BusFactory,
) -> None:
    publisher, relay = await make_bus(), await make_bus()
    async with relay.subscribe("job_a") as events:
        await publisher.publish("job_a", event(1))
        assert await next_event(events) == event(1)

        await kill_named_client(relay.client_name)

        # Told (possibly more than once while reconnecting) that events may be missing, so the
        # stream re-reads the database; then live delivery goes on.
        with pytest.raises(SubscriptionInterrupted):
            await next_event(events)
        for _ in range(100):
            if relay.connected:
                break
            await asyncio.sleep(0.05)
        assert relay.connected
        await publisher.publish("job_a", event(2))
        while True:
            try:
                assert await next_event(events) == event(2)
                break
            except SubscriptionInterrupted:
                continue


async def test_while_redis_is_unreachable_publishing_is_quiet_and_subscribers_poll(
    make_bus: BusFactory,
) -> None:
    url = f"redis://127.0.0.1:{free_local_port()}/0"  # nothing listens there
    bus = await make_bus(url, timeout_s=0.2, poll_s=0.1)

    await bus.publish("job_a", event(1))  # logged, not raised: the event is in the database
    readiness = await bus.readiness()
    async with bus.subscribe("job_a") as events:
        for _ in range(3):  # again and again: the stream keeps reading the database
            with pytest.raises(SubscriptionInterrupted):
                await next_event(events, within_s=2)

    assert not bus.connected
    assert readiness["redis"].startswith("unreachable: ")


async def test_close_ends_a_listener_that_swallowed_its_cancellation(
    make_bus: BusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio.wait_for (Python 3.11) may swallow a cancellation that lands as its call ends;
    the listener, reconnecting to a Redis that is down, must still end when the bus closes
    (the API's shutdown waited forever on it once)."""
    url = f"redis://127.0.0.1:{free_local_port()}/0"  # nothing listens there
    bus = await make_bus(url, timeout_s=0.2)
    connecting = asyncio.Event()
    swallowed: list[bool] = []

    async def connect_that_loses_one_cancellation() -> None:
        connecting.set()
        try:
            await asyncio.sleep(3600)  # a connection attempt in flight
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)
            raise ConnectionError("as if the cancellation had been lost") from None

    monkeypatch.setattr(bus, "_connect", connect_that_loses_one_cancellation)
    await asyncio.wait_for(connecting.wait(), 10)  # the listener's next try is the stand-in

    await asyncio.wait_for(bus.close(), 10)

    assert swallowed == [True]
