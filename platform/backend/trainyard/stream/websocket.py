"""WS /v1/jobs/{id}/stream?after_seq=N: a job's events, replayed then live, without gaps.

1. Join the job's fan-out first (fanout.py: one bus subscription per job in this process),
   so nothing committed from now on can be missed.
2. Replay stored events with seq > N from the database.
3. Relay live events: the fan-out writes them to this client directly while it keeps up;
   otherwise they wait in its bounded backlog and are sent from here, dropping any already
   sent and filling a gap from the database (also when the bus says it may have lost
   events, e.g. while Redis reconnects).
4. Close with 1000 after sending the terminal `state` event (at once if the job had already
   ended and the replay reached the end).

Credentials as any route's, or `?ticket=` from POST /v1/stream/tickets where a browser cannot
send a header: for this job only, once, within 30 s (trainyard.auth.stream_tickets).

Close codes: 1000 done; 4401 not signed in (e.g. a bad, spent or expired ticket); 4404 unknown
job; 1013 the client fell too far behind (reconnect with after_seq = the last seq received).
Frames are the same objects as GET /v1/jobs/{id}/events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from trainyard.auth.principal import Access
from trainyard.core.bus import Event
from trainyard.core.db import Database
from trainyard.deps import CanRead
from trainyard.jobs.events import event_payload
from trainyard.jobs.models import MAX_INT_COLUMN, Job
from trainyard.jobs.service import events_after
from trainyard.runtime import runtime_of
from trainyard.stream.fanout import StreamMember, is_terminal_state_event
from trainyard.stream.ws_protocol import send_now_of
from trainyard_workflows.job_states import JobState

logger = logging.getLogger(__name__)

router = APIRouter()

CLOSE_DONE = 1000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNKNOWN_JOB = 4404

_REPLAY_BATCH = 500


class _ClientGone(Exception):
    pass


class _FrameCache:
    """The JSON text of recently replayed events, so clients of one job replaying the same
    events (a reconnect after a restart) serialise each once rather than once per client.
    A job's `seq` names immutable content, so (job, seq) is a safe key; the bound keeps
    memory flat."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._texts: OrderedDict[tuple[str, int], str] = OrderedDict()

    def text(self, job_id: str, event: Event) -> str:
        key = (job_id, int(event["seq"]))
        text = self._texts.get(key)
        if text is None:
            text = json.dumps(event)
            self._texts[key] = text
            if len(self._texts) > self._size:
                self._texts.popitem(last=False)
        return text


_frames = _FrameCache()


class _Relay:
    """Sends one job's events to one client in seq order, each exactly once: the stored ones
    itself, the live ones through the job's fan-out (directly, or from the member's backlog
    when the client cannot take them at once)."""

    def __init__(
        self, websocket: WebSocket, db: Database, job_id: str, member: StreamMember
    ) -> None:
        self._websocket = websocket
        self._db = db
        self._job_id = job_id
        self._member = member

    async def run(self, opening: _Opening) -> tuple[int, str]:
        """Relay until the job's end; the close code and reason to end the connection with."""
        member = self._member
        if await self._send_stored(opening.events):
            return CLOSE_DONE, "job finished"
        if len(opening.events) == _REPLAY_BATCH and await self._replay():
            return CLOSE_DONE, "job finished"
        if opening.ended:
            # Ended before the events were read, so the terminal one was among them or
            # already with the client (after_seq past it): nothing more will come.
            return CLOSE_DONE, "job finished"
        while True:
            if member.finished:
                return CLOSE_DONE, "job finished"
            if member.overflowed:
                reason = f"too slow; reconnect with after_seq={member.last_sent}"
                return CLOSE_TRY_AGAIN_LATER, reason
            if member.interrupted:
                # The bus may have lost events (e.g. Redis dropped): the database has them.
                member.interrupted = False
                if await self._replay():
                    return CLOSE_DONE, "job finished"
                continue
            item = member.take()
            if item is None:
                # Caught up: from now on the fan-out writes to this client itself (no await
                # between the empty backlog and this, so nothing slips in between).
                member.live = True
                await member.wait()
                continue
            event, message = item
            seq = int(event["seq"])
            if seq <= member.last_sent:
                continue
            if seq > member.last_sent + 1 and await self._replay(up_to=seq - 1):
                return CLOSE_DONE, "job finished"
            await self._send(seq, message.text)
            if is_terminal_state_event(event):
                return CLOSE_DONE, "job finished"

    async def _replay(self, up_to: int | None = None) -> bool:
        """Send stored events after the last one sent; True once the terminal one was sent."""
        while True:
            async with self._db.session() as session:
                batch = [
                    event_payload(e)
                    for e in await events_after(
                        session, self._job_id, self._member.last_sent, _REPLAY_BATCH, up_to
                    )
                ]
            if await self._send_stored(batch):
                return True
            if len(batch) < _REPLAY_BATCH:
                return False

    async def _send_stored(self, batch: list[Event]) -> bool:
        """Send these stored events; True once the terminal one was sent."""
        for event in batch:
            await self._send(int(event["seq"]), _frames.text(self._job_id, event))
            if is_terminal_state_event(event):
                return True
        return False

    async def _send(self, seq: int, text: str) -> None:
        try:
            await self._websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _ClientGone from exc
        self._member.last_sent = seq


async def _until_disconnected(websocket: WebSocket) -> None:
    # The client never needs to speak; reading is how a vanished client is noticed while the
    # relay waits for events of a quiet job.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


@dataclass(frozen=True)
class _Opening:
    ended: bool  # the job was terminal before `events` were read
    traceparent: str | None  # the job's trace, which the relay's spans join
    events: list[Event]  # the first stored events after after_seq (up to _REPLAY_BATCH)


async def _open(db: Database, job_id: str, access: Access, after_seq: int) -> _Opening | None:
    """What a new stream starts with, read in one session (a reconnect storm of 1000 clients
    is 1000 of these); None when the caller may see no such job. The state is read before the
    events: a terminal state is committed with its event, so they then include it."""
    async with db.session() as session:
        job = await session.get(Job, job_id)
        if job is None or not access.allows(job.project_id):
            return None
        ended = JobState(job.state).terminal
        stored = await events_after(session, job_id, after_seq, _REPLAY_BATCH)
        return _Opening(ended, job.traceparent, [event_payload(e) for e in stored])


@router.websocket("/v1/jobs/{job_id}/stream")
async def stream_job_events(
    websocket: WebSocket,
    job_id: str,
    access: CanRead,
    # Bounded: a larger one closes with 1008 naming it (core.errors), not a database error.
    after_seq: Annotated[int, Query(ge=0, le=MAX_INT_COLUMN)] = 0,
) -> None:
    runtime = runtime_of(websocket)
    await websocket.accept()
    async with runtime.fanout.join(job_id, send_now_of(websocket), after_seq) as member:
        opening = await _open(runtime.db, job_id, access, after_seq)
        if opening is None:
            await websocket.close(CLOSE_UNKNOWN_JOB, "job does not exist")
            return
        runtime.fanout.continue_trace(job_id, opening.traceparent)
        relay = _Relay(websocket, runtime.db, job_id, member)
        relaying = asyncio.create_task(relay.run(opening))
        watching = asyncio.create_task(_until_disconnected(websocket))
        try:
            await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not relaying.done():
                relaying.cancel()  # the client left: nobody to relay to
            await asyncio.gather(relaying, watching, return_exceptions=True)
    if relaying.cancelled():
        return
    error = relaying.exception()
    if error is not None:
        if not isinstance(error, _ClientGone):
            logger.error("stream of %s failed", job_id, exc_info=error)
        return
    code, reason = relaying.result()
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code, reason)
