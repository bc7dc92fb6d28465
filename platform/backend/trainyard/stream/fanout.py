"""One bus subscription per job per API process, fanned out to that job's WebSocket clients.

A job followed by 1000 clients costs this process ONE subscription and one loop: for each
event the loop serialises the frame once and writes it straight to every client that is
caught up and can take it at once (`ws_protocol.send_now`). No per-client task wakes up for
it, which halved the relay's latency with 1000 clients (see ws_protocol.py for figures).

A client leaves that fast path whenever a direct write is not right: it is still replaying,
the event is not the next one it needs (a gap), or its connection cannot take a frame now
(it reads slowly). The event then goes to the client's own bounded backlog and its own task
(`websocket.py`) sends it with the usual awaiting, filling gaps from the database; once the
backlog is empty the client is back on the fast path. A client whose backlog overflows is
told so and closed by its task (1013), never slowing the loop or the other clients.

When the bus may have lost events (Redis dropped, or this loop's own subscription
overflowed) every client is told to re-read the database after its last seq.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from trainyard.core.bus import Event, EventBus, SubscriberOverflowed, SubscriptionInterrupted
from trainyard.observability.metrics import STREAM_CLIENTS, STREAM_RELAY_SECONDS
from trainyard.stream.ws_protocol import OutgoingText, SendNow
from trainyard_workflows.job_states import TERMINAL_STATES
from trainyard_workflows.telemetry.tracing import context_from_traceparent

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
# The relayed event's type on the relay's span: heartbeat relays are sampled like heartbeats
# (observability.tracing.HeartbeatSampler).
EVENT_TYPE_ATTRIBUTE = "trainyard.event.type"


def is_terminal_state_event(event: Event) -> bool:
    data = event.get("data") or {}
    return event.get("type") == "state" and data.get("to") in TERMINAL_STATES


class StreamMember:
    """One client of a job's fan-out: where it is in the stream and what waits for it.

    `last_sent` is the seq of the last event the client was sent, by the fan-out or by its
    own task. The task drains `take()`, and sets `live` once it has nothing left to send.
    """

    def __init__(self, send_now: SendNow | None, max_backlog: int, last_sent: int) -> None:
        self._send_now = send_now
        self._max_backlog = max_backlog
        self._backlog: deque[tuple[Event, OutgoingText]] = deque()
        self._signal = asyncio.Event()
        self.last_sent = last_sent
        self.live = False
        self.overflowed = False
        self.interrupted = False
        self.finished = False  # the fan-out sent the terminal event

    def offer(self, event: Event, message: OutgoingText) -> None:
        """Called by the fan-out for each event; never blocks."""
        if self.overflowed or self.finished:
            return
        if self.live:
            seq = int(event["seq"])
            if seq <= self.last_sent:
                return
            send_now = self._send_now
            if seq == self.last_sent + 1 and send_now is not None and send_now(message):
                self.last_sent = seq
                if is_terminal_state_event(event):
                    self.finished = True
                    self._signal.set()
                return
            self.live = False  # its task takes over until the backlog is empty again
        if len(self._backlog) >= self._max_backlog:
            self.overflowed = True
            self._backlog.clear()  # useless once one was dropped: the client resumes by seq
        else:
            self._backlog.append((event, message))
        self._signal.set()

    def interrupt(self) -> None:
        """Events may have been lost: the task re-reads the database after `last_sent`."""
        self.live = False
        self.interrupted = True
        self._signal.set()

    def take(self) -> tuple[Event, OutgoingText] | None:
        """The next event the task must send, if any."""
        return self._backlog.popleft() if self._backlog else None

    async def wait(self) -> None:
        """Until the fan-out has something for the task (an event, an end, an interruption)."""
        await self._signal.wait()
        self._signal.clear()


class _JobFanout:
    """The subscription and loop of one job, alive while the job has clients here."""

    def __init__(self, bus: EventBus, job_id: str) -> None:
        self.members: set[StreamMember] = set()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A failure to subscribe is raised to the joining clients; not worth a warning here.
        self.ready.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._bus = bus
        self._job_id = job_id
        # The job's trace (its submit request's context): relay spans join it, not a trace each.
        self.trace_parent: Context | None = None
        self.task = asyncio.create_task(self._run(), name=f"stream fan-out {job_id}")

    async def _run(self) -> None:
        while True:
            try:
                async with self._bus.subscribe(self._job_id) as live:
                    if not self.ready.done():
                        self.ready.set_result(None)
                    await self._relay(live)
                # This loop's own subscription overflowed (it fell 1000s of events behind):
                # what it dropped is in the database; take a fresh one.
                self._interrupt_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.ready.done():
                    self.ready.set_exception(exc)  # the joining clients fail with it
                    return
                logger.exception("stream fan-out of %s failed; subscribing again", self._job_id)
                self._interrupt_all()  # its clients read the database meanwhile
                await asyncio.sleep(1.0)

    async def _relay(self, live: AsyncIterator[Event]) -> None:
        while True:
            try:
                async for event in live:
                    with self._relay_span(event):
                        message = OutgoingText(json.dumps(event))
                        for member in list(self.members):
                            member.offer(event, message)
                    _observe_relay(event)
            except SubscriberOverflowed:
                return
            except SubscriptionInterrupted:
                self._interrupt_all()
                continue
            return  # the bus ended the subscription (never expected): resubscribe

    def _relay_span(self, event: Event) -> AbstractContextManager[Span]:
        """One span per event relayed to all of the job's clients here (not one per client);
        heartbeat events are sampled as their requests are (observability.tracing)."""
        return _tracer.start_as_current_span(
            "stream relay",
            context=self.trace_parent,
            attributes={
                "trainyard.job_id": self._job_id,
                EVENT_TYPE_ATTRIBUTE: str(event.get("type")),
                "trainyard.stream.clients": len(self.members),
            },
        )

    def _interrupt_all(self) -> None:
        for member in self.members:
            member.interrupt()


def _observe_relay(event: Event) -> None:
    """Stored → written to the caught-up clients (or queued for the others' tasks)."""
    created_at = event.get("created_at")
    if isinstance(created_at, str):
        stored = datetime.fromisoformat(created_at)
        STREAM_RELAY_SECONDS.observe(max(0.0, (datetime.now(UTC) - stored).total_seconds()))


class StreamFanout:
    """The per-process registry of job fan-outs; `join` is how a client follows a job."""

    def __init__(self, bus: EventBus, max_backlog: int) -> None:
        self._bus = bus
        self._max_backlog = max_backlog
        self._jobs: dict[str, _JobFanout] = {}

    @asynccontextmanager
    async def join(
        self, job_id: str, send_now: SendNow | None, after_seq: int
    ) -> AsyncIterator[StreamMember]:
        """Follow `job_id` from now on: every event published after this returns reaches the
        member (directly or through its backlog). Leaving the block leaves the fan-out."""
        fanout = self._jobs.get(job_id)
        if fanout is None:
            fanout = self._jobs[job_id] = _JobFanout(self._bus, job_id)
        member = StreamMember(send_now, self._max_backlog, after_seq)
        fanout.members.add(member)
        STREAM_CLIENTS.inc()
        try:
            await asyncio.shield(fanout.ready)
            yield member
        finally:
            STREAM_CLIENTS.dec()
            fanout.members.discard(member)
            if not fanout.members and self._jobs.get(job_id) is fanout:
                del self._jobs[job_id]
                fanout.task.cancel()
                await asyncio.gather(fanout.task, return_exceptions=True)

    def continue_trace(self, job_id: str, traceparent: str | None) -> None:
        """Relay `job_id`'s events in its trace (the job's stored `traceparent`)."""
        fanout = self._jobs.get(job_id)
        if fanout is not None and fanout.trace_parent is None:
            fanout.trace_parent = context_from_traceparent(traceparent)

    def member_count(self, job_id: str) -> int:
        fanout = self._jobs.get(job_id)
        return len(fanout.members) if fanout is not None else 0

    async def close(self) -> None:
        jobs, self._jobs = list(self._jobs.values()), {}
        for fanout in jobs:
            fanout.task.cancel()
        await asyncio.gather(*(fanout.task for fanout in jobs), return_exceptions=True)
