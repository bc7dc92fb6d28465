"""The admission ledger: given what the platform has, what admitted jobs hold and each project's
limits, which waiting jobs start now and why the others wait. Pure: no I/O, no clock, no
database; the caller loads the facts, calls `decide` and writes the verdicts.

Policy:
- A job with `gpus > 0` takes that many of the platform's GPUs; a job with `gpus == 0` takes one
  CPU slot. The two kinds share nothing but a project's run quota.
- Effective priority = priority + floor((now - submitted_at) / ageing_s): a job gains one level
  per `ageing_s` waited, so however busy the platform, nothing starves.
- Queue order: effective priority (highest first), then fair share between projects, then
  submission time, then job id. Fair share: the project whose admitted share is smallest goes
  first; its share is what it holds plus what this pass admitted of the job's kind (GPUs for GPU
  jobs, CPU runs for CPU jobs) divided by its weight, the project's quota of that kind (`gpus`,
  `runs`) or the resource's total when it has none.
- A job its project's budget or quota holds is skipped: it waits, and blocks no other project.
- A job that does not fit the free capacity waits and blocks every later job of its kind (no
  backfill: small jobs slipping past would starve a big one). A job larger than the whole
  platform is the exception: it could never start, so it waits without blocking (submission
  refuses such jobs; this only happens when capacity shrinks after they were queued).
- Nothing is admitted beyond the resources or any quota.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Resources:
    """What the ledger may hand out."""

    gpus: int  # total GPUs
    cpu_slots: int  # concurrent CPU-only runs (a job with gpus == 0 takes one)


@dataclass(frozen=True)
class Quota:
    """One project's limits; None = no limit."""

    gpus: int | None = None
    runs: int | None = None
    budget_exhausted: bool = False  # GPU-hours for the month used up (GPU jobs held)


@dataclass(frozen=True)
class Holding:
    """An admitted job that has not ended."""

    job_id: str
    project_id: str
    gpus: int


@dataclass(frozen=True)
class Waiting:
    """A validated job waiting for admission."""

    job_id: str
    project_id: str
    gpus: int
    priority: int
    submitted_at: float  # epoch seconds


class HoldKind(StrEnum):
    CAPACITY = "capacity"
    QUOTA_GPUS = "quota_gpus"
    QUOTA_RUNS = "quota_runs"
    BUDGET = "budget"
    # Not the ledger's: Kueue holds the job on Kubernetes (admission/external_queue.py).
    KUEUE = "kueue"


@dataclass(frozen=True)
class Verdict:
    job_id: str
    admitted: bool
    position: int  # 0 when admitted; else 1-based place among those still waiting
    # GPUs asked by the waiting jobs ahead of it that wait for capacity: the ones that will take
    # GPUs before it (one its own quota holds is ahead of no one; 0 for a CPU job)
    gpus_ahead: int
    hold: HoldKind | None  # why it waits (None when admitted)
    reason: str  # one sentence for people ("" when admitted)


def effective_priority(job: Waiting, now: float, ageing_s: float) -> int:
    """The job's priority plus one level per `ageing_s` it has waited (a clock that runs behind
    a submission time never lowers it)."""
    return job.priority + math.floor(max(0.0, now - job.submitted_at) / ageing_s)


# A waiting job in its group: (-effective priority, submitted_at, job_id, the job)
_Queued = tuple[int, float, str, Waiting]
# A group's next job in the heap: (-effective priority, share, submitted_at, job_id, group), where
# a group is (project_id, uses GPUs)
_Head = tuple[int, float, float, str, tuple[str, bool]]


def decide(
    resources: Resources,
    holding: Sequence[Holding],
    waiting: Sequence[Waiting],
    quotas: Mapping[str, Quota],
    now: float,
    ageing_s: float = 600.0,
) -> list[Verdict]:
    """One verdict per waiting job, in queue order: the admitted first, in admission order, then
    the others in the order they would be admitted (the module docstring states the policy)."""
    if ageing_s <= 0:
        raise ValueError(f"ageing_s must be positive, got {ageing_s}")
    pass_ = _Pass(resources, holding, quotas)
    # Within one (project, kind) the order is fixed; only the share between them moves, and only
    # for the group that just admitted a job. So a heap of group heads yields the queue order.
    groups: dict[tuple[str, bool], list[_Queued]] = {}
    for job in waiting:
        key = (-effective_priority(job, now, ageing_s), job.submitted_at, job.job_id, job)
        groups.setdefault((job.project_id, job.gpus > 0), []).append(key)
    heads: list[_Head] = []
    for group, jobs in groups.items():
        jobs.sort(key=lambda entry: entry[:3], reverse=True)  # pop() from the end = best
        heads.append(_head(pass_, group, jobs))
    heapq.heapify(heads)

    admitted: list[Verdict] = []
    held: list[Verdict] = []
    while heads:
        group = heapq.heappop(heads)[4]
        jobs = groups[group]
        job = jobs.pop()[3]
        verdict = pass_.judge(job, len(held) + 1)
        (admitted if verdict.admitted else held).append(verdict)
        if jobs:
            heapq.heappush(heads, _head(pass_, group, jobs))
    return admitted + held


def _head(pass_: _Pass, group: tuple[str, bool], jobs: list[_Queued]) -> _Head:
    negated_priority, submitted_at, job_id, _ = jobs[-1]
    return negated_priority, pass_.share(*group), submitted_at, job_id, group


class _Pass:
    """What one `decide` pass knows and has handed out so far."""

    def __init__(
        self, resources: Resources, holding: Sequence[Holding], quotas: Mapping[str, Quota]
    ) -> None:
        self.resources = resources
        self.quotas = quotas
        self.free_gpus = resources.gpus
        self.free_cpu = resources.cpu_slots
        self.project_gpus: dict[str, int] = {}
        self.project_cpu_runs: dict[str, int] = {}
        self.project_runs: dict[str, int] = {}
        for job in holding:
            self._take(job.project_id, job.gpus)
        self.blocked = {True: False, False: False}  # by kind: gpus > 0
        self.gpus_waiting = 0  # GPUs asked by the capacity-held so far
        self.cpu_waiting = 0  # CPU runs held by capacity so far

    def share(self, project_id: str, uses_gpus: bool) -> float:
        quota = self.quotas.get(project_id, _NO_QUOTA)
        if uses_gpus:
            used = self.project_gpus.get(project_id, 0)
            weight = self.resources.gpus if quota.gpus is None else quota.gpus
        else:
            used = self.project_cpu_runs.get(project_id, 0)
            weight = self.resources.cpu_slots if quota.runs is None else quota.runs
        return used / weight if weight > 0 else math.inf

    def judge(self, job: Waiting, position: int) -> Verdict:
        hold, reason = self._quota_hold(job)
        if hold is None:
            hold, reason = self._capacity_hold(job)
        if hold is None:
            self._take(job.project_id, job.gpus)
            return Verdict(job.job_id, True, 0, 0, None, "")
        ahead = self.gpus_waiting if job.gpus > 0 else 0
        verdict = Verdict(job.job_id, False, position, ahead, hold, reason)
        if hold is HoldKind.CAPACITY and not self._never_fits(job):
            self.gpus_waiting += job.gpus
            self.cpu_waiting += 0 if job.gpus > 0 else 1
        return verdict

    def _take(self, project_id: str, gpus: int) -> None:
        self.project_runs[project_id] = self.project_runs.get(project_id, 0) + 1
        if gpus > 0:
            self.free_gpus -= gpus
            self.project_gpus[project_id] = self.project_gpus.get(project_id, 0) + gpus
        else:
            self.free_cpu -= 1
            self.project_cpu_runs[project_id] = self.project_cpu_runs.get(project_id, 0) + 1

    def _quota_hold(self, job: Waiting) -> tuple[HoldKind | None, str]:
        quota = self.quotas.get(job.project_id, _NO_QUOTA)
        if job.gpus > 0 and quota.budget_exhausted:
            return HoldKind.BUDGET, (
                "its project has used this month's GPU-hours: GPU jobs wait until the budget "
                "is raised or the month turns"
            )
        if job.gpus > 0 and quota.gpus is not None:
            used = self.project_gpus.get(job.project_id, 0)
            if job.gpus > quota.gpus:
                return HoldKind.QUOTA_GPUS, (
                    f"asks for {_gpus(job.gpus)}, more than its project's quota of "
                    f"{_gpus(quota.gpus)}: ask for at most {quota.gpus}"
                )
            if used + job.gpus > quota.gpus:
                return HoldKind.QUOTA_GPUS, (
                    f"waiting for {_gpus(job.gpus)}: its project uses {used} of its quota of "
                    f"{_gpus(quota.gpus)}"
                )
        if quota.runs is not None:
            runs = self.project_runs.get(job.project_id, 0)
            if runs + 1 > quota.runs:
                return HoldKind.QUOTA_RUNS, (
                    f"waiting for a run to end: its project runs {runs} of the {quota.runs} "
                    "its quota allows at a time"
                )
        return None, ""

    def _capacity_hold(self, job: Waiting) -> tuple[HoldKind | None, str]:
        uses_gpus = job.gpus > 0
        if self._never_fits(job):
            if uses_gpus:
                return HoldKind.CAPACITY, (
                    f"asks for {_gpus(job.gpus)}, but the platform has {self.resources.gpus} in "
                    "all: it cannot start until GPUs are added"
                )
            return HoldKind.CAPACITY, (
                "the platform has no slot for runs without a GPU: it cannot start until one "
                "is configured"
            )
        free = self.free_gpus if uses_gpus else self.free_cpu
        needed = job.gpus if uses_gpus else 1
        if not self.blocked[uses_gpus] and needed <= free:
            return None, ""
        self.blocked[uses_gpus] = True  # no backfill: nothing of this kind passes it
        if uses_gpus:
            ahead = f", {_gpus(self.gpus_waiting)} ahead in the queue" if self.gpus_waiting else ""
            return HoldKind.CAPACITY, (
                f"waiting for {_gpus(job.gpus)}: {max(free, 0)} of {self.resources.gpus} free"
                f"{ahead}"
            )
        ahead = f", {_runs(self.cpu_waiting)} ahead in the queue" if self.cpu_waiting else ""
        return HoldKind.CAPACITY, (
            f"waiting for a CPU slot: {max(free, 0)} of {self.resources.cpu_slots} free{ahead}"
        )

    def _never_fits(self, job: Waiting) -> bool:
        if job.gpus > 0:
            return job.gpus > self.resources.gpus
        return self.resources.cpu_slots < 1


_NO_QUOTA = Quota()


def _gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"
