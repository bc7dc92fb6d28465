"""WS /v1/jobs/{id}/stream?after_seq=N: a job's events, replayed then live, without gaps.

1. Subscribe to the bus first, so nothing committed from now on can be missed.
2. Replay stored events with seq > N from the database.
3. Relay live events, dropping any already sent and filling a gap from the database (also
   when the bus says it may have lost events, e.g. while Redis reconnects).
4. Close with 1000 after sending the terminal `state` event (at once if the job had already
   ended and the replay reached the end).

Close codes: 1000 done; 4404 unknown job; 1013 the client fell too far behind (reconnect with
after_seq = the last seq received). Frames are the same objects as GET /v1/jobs/{id}/events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from trainyard.core.db import Database
from trainyard.core.runtime import runtime_of
from trainyard.jobs.events import event_payload
from trainyard.jobs.models import Job
from trainyard.jobs.service import events_after
from trainyard.jobs.states import TERMINAL_STATES, JobState
from trainyard.stream.bus import Event, SubscriberOverflowed, SubscriptionInterrupted

logger = logging.getLogger(__name__)

router = APIRouter()

CLOSE_DONE = 1000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNKNOWN_JOB = 4404

_REPLAY_BATCH = 500


def is_terminal_state_event(event: Event) -> bool:
    data = event.get("data") or {}
    return event.get("type") == "state" and data.get("to") in TERMINAL_STATES


class _ClientGone(Exception):
    pass


class _FrameCache:
    """The JSON text of recently relayed events, so an event that fans out to many clients of
    one job is serialised once rather than once per client. A job's `seq` names immutable
    content, so (job, seq) is a safe key; the bound keeps memory flat."""

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
    """Sends one job's events in seq order, each exactly once."""

    def __init__(self, websocket: WebSocket, db: Database, job_id: str, after_seq: int) -> None:
        self._websocket = websocket
        self._db = db
        self._job_id = job_id
        self.last_sent = after_seq

    async def run(self, live: AsyncIterator[Event]) -> tuple[int, str]:
        """Relay until the job's end; the close code and reason to end the connection with."""
        if await self._replay():
            return CLOSE_DONE, "job finished"
        if await self._job_ended():
            await self._replay()  # anything committed between the replay and that check
            return CLOSE_DONE, "job finished"
        while True:
            try:
                async for event in live:
                    seq = int(event["seq"])
                    if seq <= self.last_sent:
                        continue
                    if seq > self.last_sent + 1 and await self._replay(up_to=seq - 1):
                        return CLOSE_DONE, "job finished"
                    await self._send(event)
                    if is_terminal_state_event(event):
                        return CLOSE_DONE, "job finished"
            except SubscriberOverflowed:
                return CLOSE_TRY_AGAIN_LATER, f"too slow; reconnect with after_seq={self.last_sent}"
            except SubscriptionInterrupted:
                # The bus may have lost events (e.g. Redis dropped): the database has them.
                if await self._replay():
                    return CLOSE_DONE, "job finished"
                continue
            return CLOSE_TRY_AGAIN_LATER, f"stream ended; reconnect with after_seq={self.last_sent}"

    async def _replay(self, up_to: int | None = None) -> bool:
        """Send stored events after the last one sent; True once the terminal one was sent."""
        while True:
            async with self._db.session() as session:
                batch = [
                    event_payload(e)
                    for e in await events_after(
                        session, self._job_id, self.last_sent, _REPLAY_BATCH, up_to
                    )
                ]
            for event in batch:
                await self._send(event)
                if is_terminal_state_event(event):
                    return True
            if len(batch) < _REPLAY_BATCH:
                return False

    async def _job_ended(self) -> bool:
        async with self._db.session() as session:
            job = await session.get(Job, self._job_id)
        return job is not None and JobState(job.state).terminal

    async def _send(self, event: dict[str, Any]) -> None:
        try:
            await self._websocket.send_text(_frames.text(self._job_id, event))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _ClientGone from exc
        self.last_sent = int(event["seq"])


async def _until_disconnected(websocket: WebSocket) -> None:
    # The client never needs to speak; reading is how a vanished client is noticed while the
    # relay waits for events of a quiet job.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _job_exists(db: Database, job_id: str, owner: str) -> bool:
    async with db.session() as session:
        job = await session.get(Job, job_id)
    return job is not None and job.owner == owner


@router.websocket("/v1/jobs/{job_id}/stream")
async def stream_job_events(
    websocket: WebSocket, job_id: str, after_seq: Annotated[int, Query(ge=0)] = 0
) -> None:
    runtime = runtime_of(websocket)
    await websocket.accept()
    async with runtime.bus.subscribe(job_id) as live:
        if not await _job_exists(runtime.db, job_id, runtime.settings.owner):
            await websocket.close(CLOSE_UNKNOWN_JOB, "job does not exist")
            return
        relay = _Relay(websocket, runtime.db, job_id, after_seq)
        relaying = asyncio.create_task(relay.run(live))
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
