"""Admits waiting jobs as soon as something frees capacity.

`Database` shows this observer every committed event; a job reaching a terminal state, or one
preempted back into the queue, gave back what it held, so a pass runs (`service.admit_waiting`)
and the workflows of the jobs it admits (or tells to give way) are signalled. One pass at a
time per process, in the background (a trainer's `done` is not answered later for it); events
that arrive during a pass make one more pass, not one each. A pass lost with the process (a
crash right after a commit) is made up by the queued workflows' own rechecks
(activity_options.ADMISSION_RECHECK).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from trainyard.admission.service import admit_waiting
from trainyard.core.db import Database
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.orchestration import wake
from trainyard_workflows.event_types import PREEMPTED
from trainyard_workflows.job_states import TERMINAL_STATES

logger = logging.getLogger(__name__)


class AdmissionTrigger:
    def __init__(self, db: Database, gateway: TemporalGateway, preempt: bool) -> None:
        self._db = db
        self._gateway = gateway
        self._preempt = preempt
        self._running: asyncio.Task[None] | None = None
        self._again = False

    async def __call__(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if any(_frees_capacity(event) for _, event in events):
            self.kick()

    def kick(self) -> None:
        """Run a pass now, or once more after the one running."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.create_task(self._passes(), name="admission-pass")

    async def close(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def _passes(self) -> None:
        while True:
            self._again = False
            try:
                async with self._db.session() as session:
                    result = await admit_waiting(session, self._preempt)
                await wake(self._gateway, result.admitted, result.preempted)
            except Exception:
                logger.exception("admission pass failed (queued jobs recheck on their own)")
            if not self._again:
                return


def _frees_capacity(event: dict[str, Any]) -> bool:
    # A job that ended, or one that gave way (preempted: back in the queue, holding nothing).
    if event.get("type") == PREEMPTED:
        return True
    return event.get("type") == "state" and (event.get("data") or {}).get("to") in TERMINAL_STATES
