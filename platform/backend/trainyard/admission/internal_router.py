"""The workers' capacity reports (worker -> backend, internal token): what admission may hand
out, and what a job is refused against at submit."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status

from trainyard.admission.capacity_store import save_capacity
from trainyard.admission.trigger import AdmissionTrigger
from trainyard.core.db import AfterCommit, after_commit
from trainyard.deps import SessionDep
from trainyard.internal.router import require_internal_token
from trainyard.runtime import runtime_of
from trainyard_workflows.capacity import Capacity

router = APIRouter(
    prefix="/internal/v1",
    include_in_schema=False,
    dependencies=[Depends(require_internal_token)],
)


@router.put("/capacity", status_code=status.HTTP_204_NO_CONTENT)
async def report_capacity(body: Capacity, session: SessionDep, request: Request) -> None:
    """Replace the platform's capacity with the worker's newest report; queued jobs get a
    pass once it is stored (a bigger platform may admit some)."""
    await save_capacity(session, body)
    after_commit(session, _admit_waiting(runtime_of(request).admission))


def _admit_waiting(trigger: AdmissionTrigger) -> AfterCommit:
    async def kick() -> None:
        trigger.kick()

    return kick
