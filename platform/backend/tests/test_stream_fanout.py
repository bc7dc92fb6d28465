"""The job fan-out and its members: direct writes while a client keeps up, its own backlog
when it cannot, overflow, interruptions, one bus subscription per job."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.protocol import State
from websockets.server import ServerProtocol

from trainyard.core.bus import Event
from trainyard.stream.fanout import StreamFanout, StreamMember
from trainyard.stream.inproc import InProcessBus
from trainyard.stream.ws_protocol import OutgoingText


def event(seq: int, **data: Any) -> Event:
    return {"seq": seq, "type": "state" if data else "heartbeat", "data": data}


class Connection:
    """What `send_now` writes to: frames accepted while `writable`, refused otherwise."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.writable = True

    def send_now(self, message: OutgoingText) -> bool:
        if self.writable:
            self.frames.append(message.text)
        return self.writable


def offer(member: StreamMember, *events: Event) -> None:
    for item in events:
        member.offer(item, OutgoingText(json.dumps(item)))


def test_a_live_member_that_keeps_up_is_written_to_directly() -> None:
    connection = Connection()
    member = StreamMember(connection.send_now, max_backlog=4, last_sent=2)
    member.live = True

    offer(member, event(2), event(3), event(4))  # 2 was already sent

    assert [json.loads(frame)["seq"] for frame in connection.frames] == [3, 4]
    assert (member.last_sent, member.take(), member.live) == (4, None, True)


def test_a_member_still_replaying_gets_events_in_its_backlog() -> None:
    connection = Connection()
    member = StreamMember(connection.send_now, max_backlog=4, last_sent=0)

    offer(member, event(1))

    assert connection.frames == []
    taken = member.take()
    assert taken is not None
    assert taken[0]["seq"] == 1


def test_a_connection_that_cannot_take_a_frame_moves_its_events_to_the_backlog() -> None:
    connection = Connection()
    member = StreamMember(connection.send_now, max_backlog=4, last_sent=0)
    member.live = True
    offer(member, event(1))
    connection.writable = False

    offer(member, event(2), event(3))
    connection.writable = True
    offer(member, event(4))  # not live any more: its task must send 2 and 3 first

    assert [json.loads(frame)["seq"] for frame in connection.frames] == [1]
    assert member.live is False
    backlog = []
    while (taken := member.take()) is not None:
        backlog.append(taken[0]["seq"])
    assert backlog == [2, 3, 4]


def test_a_gap_is_left_to_the_members_task_to_fill_from_the_database() -> None:
    connection = Connection()
    member = StreamMember(connection.send_now, max_backlog=4, last_sent=1)
    member.live = True

    offer(member, event(3))

    assert connection.frames == []
    taken = member.take()
    assert taken is not None
    assert taken[0]["seq"] == 3


def test_a_backlog_past_its_bound_overflows_and_is_dropped() -> None:
    member = StreamMember(None, max_backlog=2, last_sent=0)

    offer(member, event(1), event(2), event(3), event(4))

    assert member.overflowed is True
    assert member.take() is None


def test_the_terminal_event_written_directly_finishes_the_member() -> None:
    connection = Connection()
    member = StreamMember(connection.send_now, max_backlog=4, last_sent=0)
    member.live = True

    offer(member, event(1, to="SUCCEEDED"), event(2))

    assert member.finished is True
    assert len(connection.frames) == 1


async def test_one_bus_subscription_serves_every_client_of_a_job_and_ends_with_the_last() -> None:
    bus = InProcessBus()
    fanout = StreamFanout(bus, max_backlog=10)
    connections = [Connection() for _ in range(3)]
    async with (
        fanout.join("job_a", connections[0].send_now, 0) as first,
        fanout.join("job_a", connections[1].send_now, 0) as second,
        fanout.join("job_b", connections[2].send_now, 0) as other_job,
    ):
        for member in (first, second, other_job):
            member.live = True
        assert (bus.subscriber_count("job_a"), fanout.member_count("job_a")) == (1, 2)

        await bus.publish("job_a", event(1))
        await asyncio.sleep(0.01)  # the fan-out loop's turn

        assert [len(c.frames) for c in connections] == [1, 1, 0]
    assert bus.subscriber_count("job_a") == bus.subscriber_count("job_b") == 0
    await fanout.close()


async def test_a_lost_bus_subscription_tells_every_member_to_read_the_database() -> None:
    bus = InProcessBus(max_queue=1)
    fanout = StreamFanout(bus, max_backlog=10)
    async with fanout.join("job_a", None, 0) as member:
        # Two events before the loop runs: its one-event subscription overflows.
        await bus.publish("job_a", event(1))
        await bus.publish("job_a", event(2))
        await asyncio.wait_for(member.wait(), timeout=5)

        assert member.interrupted is True
        assert bus.subscriber_count("job_a") == 1  # subscribed afresh
    await fanout.close()


def test_a_shared_frame_is_the_bytes_the_connections_own_protocol_would_write() -> None:
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    message = OutgoingText(json.dumps({"seq": 1, "message": "héllo " * 100}))

    protocol.send_text(message.data)

    assert b"".join(protocol.data_to_send()) == message.frame


async def test_relay_spans_join_the_jobs_trace_not_a_trace_each(
    spans: InMemorySpanExporter,
) -> None:
    # A relay made outside any request would start a one-span trace per event (or none at all:
    # configure_tracing starts traces only at requests); the job's stored context is its parent.
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    bus = InProcessBus()
    fanout = StreamFanout(bus, max_backlog=8)
    connection = Connection()
    async with fanout.join("job_1", connection.send_now, after_seq=0) as member:
        member.live = True
        fanout.continue_trace("job_1", traceparent)
        await bus.publish("job_1", event(1, state="RUNNING"))
        for _ in range(100):
            if connection.frames:
                break
            await asyncio.sleep(0.01)
    await fanout.close()

    relays = [span for span in spans.get_finished_spans() if span.name == "stream relay"]
    assert len(relays) == 1
    assert relays[0].parent is not None
    assert (relays[0].context.trace_id, relays[0].parent.span_id) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
    )
