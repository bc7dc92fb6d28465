"""Which running jobs give way to a waiting job of higher priority. Pure, like the ledger.

After a ledger pass, the first job of each kind (GPU jobs, CPU jobs) that capacity holds is the
one every later job of that kind waits behind (no backfill). If running jobs of a strictly
lower priority hold what it lacks, they are preempted: the lowest priority first, then the most
recently admitted (the least work redone), until there is room; then any of them that turned
out not to be needed (a big one taken last covers a small one taken first) is spared, the most
valuable first. Jobs already giving way count as free soon, so a pass never preempts twice for
the same need. Nothing is preempted when even every
lower-priority job together would not make room, for a job its own project's quota holds, or
for one that could never fit. Priorities here are the submitted ones, not the aged ones:
waiting long moves a job up the queue, it does not let it stop other people's runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trainyard.admission.ledger import HoldKind, Resources, Verdict, Waiting


@dataclass(frozen=True)
class Running:
    """An admitted job that has not ended, as preemption sees it."""

    job_id: str
    gpus: int
    priority: int
    admitted_at: float  # epoch seconds
    # Already told to give way (it still holds its share until its trainer has stopped).
    giving_way: bool = False


@dataclass(frozen=True)
class Preemption:
    victim: str
    preemptor: str


def preemptions(
    resources: Resources,
    running: Sequence[Running],
    verdicts: Sequence[Verdict],
    waiting: Mapping[str, Waiting],
) -> list[Preemption]:
    """The running jobs to stop now so that the heads of the queue can start."""
    chosen: list[Preemption] = []
    for uses_gpus in (True, False):
        head = _blocked_head(verdicts, waiting, uses_gpus)
        if head is not None:
            chosen += _make_room(resources, running, head, uses_gpus)
    return chosen


def _blocked_head(
    verdicts: Sequence[Verdict], waiting: Mapping[str, Waiting], uses_gpus: bool
) -> Waiting | None:
    for verdict in verdicts:
        job = waiting[verdict.job_id]
        if verdict.admitted or (job.gpus > 0) != uses_gpus:
            continue
        if verdict.hold is HoldKind.CAPACITY:
            return job
    return None


def _size(gpus: int, uses_gpus: bool) -> int:
    return gpus if uses_gpus else 1


def _make_room(
    resources: Resources, running: Sequence[Running], head: Waiting, uses_gpus: bool
) -> list[Preemption]:
    total = resources.gpus if uses_gpus else resources.cpu_slots
    needed = _size(head.gpus, uses_gpus)
    if needed > total:
        return []  # could never fit: nobody gives way for it
    same_kind = [job for job in running if (job.gpus > 0) == uses_gpus]
    held = sum(_size(job.gpus, uses_gpus) for job in same_kind)
    freeing = sum(_size(job.gpus, uses_gpus) for job in same_kind if job.giving_way)
    free = total - held + freeing
    if needed <= free:
        return []  # room is on its way
    candidates = sorted(
        (job for job in same_kind if not job.giving_way and job.priority < head.priority),
        key=lambda job: (job.priority, -job.admitted_at, job.job_id),
    )
    victims: list[Running] = []
    for job in candidates:
        if free >= needed:
            break
        victims.append(job)
        free += _size(job.gpus, uses_gpus)
    if free < needed:
        return []  # even all of them would not make room: stop nobody for nothing
    for victim in list(reversed(victims)):
        if free - _size(victim.gpus, uses_gpus) >= needed:
            victims.remove(victim)
            free -= _size(victim.gpus, uses_gpus)
    return [Preemption(victim.job_id, head.job_id) for victim in victims]
