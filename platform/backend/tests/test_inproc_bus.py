"""The in-process bus: fan-out per job, and overflow instead of back-pressure."""

from __future__ import annotations

import asyncio

import pytest

from trainyard.core.bus import EventBus, SubscriberOverflowed
from trainyard.stream.inproc import InProcessBus


def event(seq: int) -> dict[str, object]:
    return {"seq": seq, "type": "log"}


async def test_every_subscriber_of_a_job_gets_its_events_in_order() -> None:
    bus: EventBus = InProcessBus()
    async with bus.subscribe("job_a") as first, bus.subscribe("job_a") as second:
        for seq in (1, 2, 3):
            await bus.publish("job_a", event(seq))
        await bus.publish("job_b", event(99))

        for events in (first, second):
            received = [await anext(events) for _ in range(3)]
            assert [e["seq"] for e in received] == [1, 2, 3]


async def test_leaving_the_subscription_unsubscribes() -> None:
    bus = InProcessBus()
    async with bus.subscribe("job_a"):
        assert bus.subscriber_count("job_a") == 1

    assert bus.subscriber_count("job_a") == 0
    await bus.publish("job_a", event(1))  # nobody listens: nothing to do, nothing raised


async def test_a_full_subscriber_is_marked_overflowed_without_blocking_the_publisher() -> None:
    bus = InProcessBus(max_queue=2)
    async with bus.subscribe("job_a") as slow, bus.subscribe("job_a") as fast:
        fast_received = []
        for seq in range(1, 6):
            await asyncio.wait_for(bus.publish("job_a", event(seq)), timeout=1)
            fast_received.append((await anext(fast))["seq"])

        assert fast_received == [1, 2, 3, 4, 5]
        with pytest.raises(SubscriberOverflowed):
            await anext(slow)
