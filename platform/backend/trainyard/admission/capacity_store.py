"""The newest capacity a worker reported, kept in `platform_capacity` (one pool, `default`,
for now: every worker of a deployment serves the same machines or cluster, so the newest
report stands for all)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.models import PlatformCapacity
from trainyard.core.db import utcnow
from trainyard_workflows.capacity import Capacity

DEFAULT_POOL = "default"


async def save_capacity(session: AsyncSession, capacity: Capacity) -> None:
    """Store `capacity` as the platform's, replacing the last report."""
    values = capacity.model_dump() | {"reported_at": utcnow()}
    row = await session.get(PlatformCapacity, DEFAULT_POOL)
    if row is None:
        try:
            # A savepoint: two workers' first reports may race to insert the row.
            async with session.begin_nested():
                session.add(PlatformCapacity(name=DEFAULT_POOL, **values))
            return
        except IntegrityError:
            row = await session.get(PlatformCapacity, DEFAULT_POOL, populate_existing=True)
            assert row is not None  # the other insert committed
    for field, value in values.items():
        setattr(row, field, value)


async def current_capacity(session: AsyncSession) -> Capacity | None:
    """The platform's capacity; None until a worker reported one."""
    row = await session.get(PlatformCapacity, DEFAULT_POOL)
    if row is None:
        return None
    return Capacity(
        gpus=row.gpus,
        largest_node_gpus=row.largest_node_gpus,
        cpu_slots=row.cpu_slots,
        source=row.source,
        queue=row.queue,
    )
