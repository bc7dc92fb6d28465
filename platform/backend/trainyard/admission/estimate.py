"""When a queued job should start: from the ledger's verdicts and the running jobs' ETAs.

Pure (no I/O, no clock): the caller gives each holder's remaining seconds. A job waits for
what holds it to free up: GPUs or CPU slots (capacity), its project's GPUs or runs (quota).
It starts once the holders that end soonest have given back enough for it and for the jobs
ahead of it that wait for the same thing; the estimate is the remaining time of the last of
those. Unknown (None) when one of those holders has no ETA yet (not running, or no heartbeat
with one), when nothing running could free enough, or when a budget holds it (that ends
with the month or an admin, not a run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trainyard.admission.ledger import HoldKind, Quota, Resources, Verdict, Waiting


@dataclass(frozen=True)
class Holder:
    """A job that holds capacity, and how long it should still run."""

    project_id: str
    gpus: int  # 0: a CPU slot
    remaining_s: float | None  # None: no ETA (not running yet, or no heartbeat with one)


def seconds_until_freed(needed: int, releases: Iterable[tuple[int, float | None]]) -> float | None:
    """When `needed` units are free, given (units, remaining seconds) of each holder: the
    holders end soonest first. 0 when nothing needs to free; None when unknown."""
    if needed <= 0:
        return 0.0
    freed = 0
    for units, remaining in sorted(releases, key=lambda r: (r[1] is None, r[1] or 0.0)):
        if remaining is None:
            return None
        freed += units
        if freed >= needed:
            return max(0.0, remaining)
    return None


def estimated_waits(
    resources: Resources,
    holders: Sequence[Holder],
    waiting: Sequence[Waiting],
    verdicts: Sequence[Verdict],
    quotas: Mapping[str, Quota],
) -> dict[str, float | None]:
    """Seconds until each waiting job should start (None: unknown), by job id. `verdicts` are
    `decide`'s for `waiting`, in its order."""
    jobs = {job.job_id: job for job in waiting}
    free_gpus = resources.gpus - sum(h.gpus for h in holders if h.gpus > 0)
    free_cpu = resources.cpu_slots - sum(1 for h in holders if h.gpus == 0)
    # What the jobs the ledger admits now will take (each project's too), before any waiter.
    project_gpus: dict[str, int] = {}
    project_runs: dict[str, int] = {}
    for holder in holders:
        _count(project_gpus, project_runs, holder.project_id, holder.gpus)
    cpu_ahead = 0
    quota_gpus_ahead: dict[str, int] = {}
    quota_runs_ahead: dict[str, int] = {}
    waits: dict[str, float | None] = {}
    for verdict in verdicts:
        job = jobs[verdict.job_id]
        if verdict.admitted:
            waits[job.job_id] = 0.0
            if job.gpus > 0:
                free_gpus -= job.gpus
            else:
                free_cpu -= 1
            _count(project_gpus, project_runs, job.project_id, job.gpus)
            continue
        quota = quotas.get(job.project_id, Quota())
        own = [h for h in holders if h.project_id == job.project_id]
        wait: float | None = None
        if verdict.hold is HoldKind.CAPACITY and job.gpus > 0:
            needed = verdict.gpus_ahead + job.gpus - free_gpus
            wait = seconds_until_freed(needed, ((h.gpus, h.remaining_s) for h in holders if h.gpus))
        elif verdict.hold is HoldKind.CAPACITY:
            needed = cpu_ahead + 1 - free_cpu
            cpu_ahead += 1
            wait = seconds_until_freed(needed, ((1, h.remaining_s) for h in holders if not h.gpus))
        elif verdict.hold is HoldKind.QUOTA_GPUS and quota.gpus is not None:
            ahead = quota_gpus_ahead.get(job.project_id, 0)
            needed = ahead + project_gpus.get(job.project_id, 0) + job.gpus - quota.gpus
            quota_gpus_ahead[job.project_id] = ahead + job.gpus
            wait = seconds_until_freed(needed, ((h.gpus, h.remaining_s) for h in own if h.gpus))
        elif verdict.hold is HoldKind.QUOTA_RUNS and quota.runs is not None:
            ahead = quota_runs_ahead.get(job.project_id, 0)
            needed = ahead + project_runs.get(job.project_id, 0) + 1 - quota.runs
            quota_runs_ahead[job.project_id] = ahead + 1
            wait = seconds_until_freed(needed, ((1, h.remaining_s) for h in own))
        waits[job.job_id] = wait
    return waits


def _count(gpus: dict[str, int], runs: dict[str, int], project_id: str, job_gpus: int) -> None:
    gpus[project_id] = gpus.get(project_id, 0) + job_gpus
    runs[project_id] = runs.get(project_id, 0) + 1
