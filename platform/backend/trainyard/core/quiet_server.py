"""uvicorn's server, ticking once a second instead of ten times.

uvicorn's main loop wakes every 0.1 s, whether or not anything happens, to see whether it was
asked to stop and (every tenth tick) to refresh the `Date` header. On the embedded tier the API
shares the machine with the training it serves, and each wake-up can pre-empt a trainer thread:
those ten a second were most of the idle API's CPU (decision 010). `QuietServer` ticks once a
second, and a stop request (SIGINT, SIGTERM) wakes it at once, so it stops as promptly as
uvicorn's own. It overrides and calls undocumented methods of `uvicorn.Server`:
core/uvicorn_internals.py lists them and checks them at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

# uvicorn's on_tick refreshes the Date header when its counter is a multiple of 10 (a second of
# its 0.1 s ticks); each of ours is a second, so it counts in tens.
_TICK_S = 1.0
_COUNTS_PER_TICK = 10
_COUNTER_WRAP = 864_000  # as uvicorn's


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._exit_requested = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + _COUNTS_PER_TICK) % _COUNTER_WRAP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), _TICK_S)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._exit_requested is not None:
            # From a signal handler: hand the event to the loop rather than set it here.
            self._loop.call_soon_threadsafe(self._exit_requested.set)
