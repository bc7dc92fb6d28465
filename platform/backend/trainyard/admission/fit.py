"""Refuse at submit a job that could never run on this platform (more GPUs than the machine or
the biggest node has, GPUs where there is none), instead of queueing it forever or letting its
trainer fail on a missing CUDA device."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.capacity_store import current_capacity
from trainyard.core.errors import FieldError, InvalidRequest
from trainyard_workflows.capacity import never_fits


async def never_fitting_reason(session: AsyncSession, gpus: int) -> str | None:
    """Why a job asking for `gpus` GPUs can never run here; None when it can, or when no
    worker reported the capacity yet (nothing is refused on a guess)."""
    capacity = await current_capacity(session)
    return None if capacity is None else never_fits(capacity, gpus)


async def refuse_never_fitting(session: AsyncSession, gpus: int) -> None:
    """422 on `gpus`, saying what exists, when the job can never run here."""
    reason = await never_fitting_reason(session, gpus)
    if reason is not None:
        raise InvalidRequest([FieldError("gpus", reason)])
