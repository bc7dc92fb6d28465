"""The admission ledger's policy (trainyard/admission/ledger.py): properties over generated
queues (limits, priority order, fair share over a long run, nothing starves) and a few plain
examples of what people read (positions, GPUs ahead, reasons)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.admission.ledger import (
    Holding,
    HoldKind,
    Quota,
    Resources,
    Verdict,
    Waiting,
    decide,
    effective_priority,
)

# Deterministic for CI (no example database, the same examples every run) and small enough that
# the whole file runs in a few seconds.
FAST = settings(database=None, derandomize=True, deadline=None, max_examples=150)
LONG = settings(database=None, derandomize=True, deadline=None, max_examples=40)

NOW = 10_000.0
AGEING_S = 600.0


@dataclass(frozen=True)
class Scene:
    resources: Resources
    holding: list[Holding]
    waiting: list[Waiting]
    quotas: dict[str, Quota]


@st.composite
def scenes(draw: st.DrawFn, fitting: bool = False) -> Scene:
    """Platforms, holdings, quotas and queues; `fitting`: every waiting job could start on an
    empty platform (within the total and its project's quota, no budget used up)."""
    resources = Resources(gpus=draw(st.integers(0, 8)), cpu_slots=draw(st.integers(1, 4)))
    projects = [f"p{index}" for index in range(draw(st.integers(1, 4)))]
    quotas: dict[str, Quota] = {}
    for project in projects:
        if draw(st.booleans()):
            quotas[project] = Quota(
                gpus=draw(st.none() | st.integers(0 if not fitting else 4, 8)),
                runs=draw(st.none() | st.integers(1, 4)),
                budget_exhausted=draw(st.booleans()) and not fitting,
            )
    most = min(4, resources.gpus) if fitting else 4
    sizes = st.integers(0, 0) | st.integers(0, most)
    holding = [
        Holding(f"h{index}", draw(st.sampled_from(projects)), draw(sizes))
        for index in range(draw(st.integers(0, 0 if fitting else 6)))
    ]
    waiting = [
        Waiting(
            f"w{index:02d}",
            draw(st.sampled_from(projects)),
            draw(sizes),
            draw(st.integers(0, 3)),
            draw(st.floats(NOW - 3_000, NOW + 10, allow_nan=False)),
        )
        for index in range(draw(st.integers(0, 20)))
    ]
    return Scene(resources, holding, waiting, quotas)


def run(scene: Scene) -> list[Verdict]:
    return decide(scene.resources, scene.holding, scene.waiting, scene.quotas, NOW, AGEING_S)


def admitted_jobs(scene: Scene, verdicts: Sequence[Verdict]) -> list[Waiting]:
    jobs = {job.job_id: job for job in scene.waiting}
    return [jobs[verdict.job_id] for verdict in verdicts if verdict.admitted]


@FAST
@given(scenes())
def test_one_verdict_per_waiting_job_admitted_first_then_numbered_positions(scene: Scene) -> None:
    verdicts = run(scene)
    assert sorted(v.job_id for v in verdicts) == sorted(job.job_id for job in scene.waiting)
    admitted = [v for v in verdicts if v.admitted]
    held = [v for v in verdicts if not v.admitted]
    assert verdicts == admitted + held
    assert all(v.position == 0 and v.hold is None and v.reason == "" for v in admitted)
    assert [v.position for v in held] == list(range(1, len(held) + 1))
    assert all(v.hold is not None and v.reason for v in held)


@FAST
@given(scenes())
def test_admitted_never_exceed_capacity_or_any_quota(scene: Scene) -> None:
    admitted = admitted_jobs(scene, run(scene))
    gpu_jobs = [job for job in admitted if job.gpus > 0]
    cpu_jobs = [job for job in admitted if job.gpus == 0]
    held_gpus = sum(job.gpus for job in scene.holding if job.gpus > 0)
    held_cpu = sum(1 for job in scene.holding if job.gpus == 0)
    # holdings may already exceed a limit (capacity shrank, a quota was lowered): then nothing
    # more of that kind is admitted
    if gpu_jobs:
        assert held_gpus + sum(job.gpus for job in gpu_jobs) <= scene.resources.gpus
    if cpu_jobs:
        assert held_cpu + len(cpu_jobs) <= scene.resources.cpu_slots
    for project, quota in scene.quotas.items():
        mine = [job for job in admitted if job.project_id == project]
        mine_gpus = sum(job.gpus for job in mine)
        if quota.gpus is not None and mine_gpus:
            held = sum(job.gpus for job in scene.holding if job.project_id == project)
            assert held + mine_gpus <= quota.gpus
        if quota.runs is not None and mine:
            held_runs = sum(1 for job in scene.holding if job.project_id == project)
            assert held_runs + len(mine) <= quota.runs
        if quota.budget_exhausted:
            assert mine_gpus == 0


@FAST
@given(scenes())
def test_no_admitted_job_has_a_lower_effective_priority_than_a_capacity_held_one(
    scene: Scene,
) -> None:
    verdicts = run(scene)
    jobs = {job.job_id: job for job in scene.waiting}

    def priority(job_id: str) -> int:
        return effective_priority(jobs[job_id], NOW, AGEING_S)

    def could_ever_start(job: Waiting) -> bool:
        return job.gpus <= scene.resources.gpus  # cpu_slots >= 1 in these scenes

    for uses_gpus in (True, False):
        admitted = [
            v.job_id for v in verdicts if v.admitted and (jobs[v.job_id].gpus > 0) == uses_gpus
        ]
        waiting_for_capacity = [
            v.job_id
            for v in verdicts
            if v.hold is HoldKind.CAPACITY
            and (jobs[v.job_id].gpus > 0) == uses_gpus
            and could_ever_start(jobs[v.job_id])
        ]
        if admitted and waiting_for_capacity:
            assert min(map(priority, admitted)) >= max(map(priority, waiting_for_capacity))


@FAST
@given(scenes())
def test_a_job_waiting_for_capacity_blocks_every_later_job_of_its_kind(scene: Scene) -> None:
    verdicts = run(scene)
    jobs = {job.job_id: job for job in scene.waiting}
    for uses_gpus in (True, False):
        kind = [v for v in verdicts if (jobs[v.job_id].gpus > 0) == uses_gpus]
        blocking = [
            index
            for index, v in enumerate(kind)
            if v.hold is HoldKind.CAPACITY and jobs[v.job_id].gpus <= scene.resources.gpus
        ]
        if blocking:
            assert not any(v.admitted for v in kind[blocking[0] :])


@FAST
@given(scenes(fitting=True), st.integers(0, 2))
def test_every_waiting_job_is_admitted_once_the_holdings_end(
    scene: Scene, rounds_ageing: int
) -> None:
    """Each round admits what fits on an empty platform, then every holding ends."""
    waiting = list(scene.waiting)
    now = NOW
    for _ in range(len(scene.waiting)):
        if not waiting:
            break
        verdicts = decide(scene.resources, [], waiting, scene.quotas, now, AGEING_S)
        started = {v.job_id for v in verdicts if v.admitted}
        assert started, "an empty platform admitted nothing"
        waiting = [job for job in waiting if job.job_id not in started]
        now += rounds_ageing * AGEING_S
    assert waiting == []


@LONG
@given(
    gpus=st.integers(2, 16),
    weights=st.lists(st.none() | st.integers(1, 16), min_size=2, max_size=4),
    largest_job=st.integers(1, 3),
    chance=st.randoms(use_true_random=False),
)
def test_fair_share_holds_within_one_job_of_the_weights_over_a_long_run(
    gpus: int, weights: list[int | None], largest_job: int, chance: random.Random
) -> None:
    """Every project always has more queued than it could get; each round admits, then about
    half of the running jobs end. Over the run, no project's average GPUs less one job, divided
    by its weight, exceed any other project's average divided by its own."""
    largest_job = min(largest_job, gpus)
    quotas = {
        f"p{index}": Quota(gpus=None if weight is None else max(weight, largest_job))
        for index, weight in enumerate(weights)
    }
    weight = {project: quota.gpus or gpus for project, quota in quotas.items()}
    ids = itertools.count()
    holding: list[Holding] = []
    waiting: list[Waiting] = []
    held_over_run = dict.fromkeys(quotas, 0)
    rounds = 40
    for turn in range(rounds):
        for project in quotas:
            while sum(1 for job in waiting if job.project_id == project) < gpus:
                size = chance.randint(1, largest_job)
                waiting.append(Waiting(f"j{next(ids):05d}", project, size, 0, float(turn)))
        # ageing off: this test is about the share between projects, not about waiting time
        verdicts = decide(Resources(gpus, 1), holding, waiting, quotas, float(turn), 1e12)
        started = {v.job_id for v in verdicts if v.admitted}
        holding += [Holding(j.job_id, j.project_id, j.gpus) for j in waiting if j.job_id in started]
        waiting = [job for job in waiting if job.job_id not in started]
        assert sum(job.gpus for job in holding) <= gpus
        for job in holding:
            held_over_run[job.project_id] += job.gpus
        holding = [job for job in holding if chance.random() < 0.5]
    average = {project: held / rounds for project, held in held_over_run.items()}
    for one, other in itertools.permutations(quotas, 2):
        assert (average[one] - largest_job) / weight[one] <= average[other] / weight[other] + 1e-9


# --- plain examples -------------------------------------------------------------------------


def job(job_id: str, project: str, gpus: int, priority: int = 0, age_s: float = 0.0) -> Waiting:
    return Waiting(job_id, project, gpus, priority, NOW - age_s)


def by_id(verdicts: Sequence[Verdict]) -> dict[str, Verdict]:
    return {verdict.job_id: verdict for verdict in verdicts}


def test_waiting_jobs_are_told_their_place_and_the_gpus_ahead_of_them() -> None:
    verdicts = decide(
        Resources(gpus=4, cpu_slots=1),
        [Holding("h", "p", 3)],
        [job("big", "p", 3, age_s=20), job("small", "p", 2, age_s=10)],
        {},
        NOW,
    )
    assert verdicts == [
        Verdict("big", False, 1, 0, HoldKind.CAPACITY, "waiting for 3 GPUs: 1 of 4 free"),
        Verdict(
            "small",
            False,
            2,
            3,
            HoldKind.CAPACITY,
            "waiting for 2 GPUs: 1 of 4 free, 3 GPUs ahead in the queue",
        ),
    ]


def test_a_big_gpu_job_blocks_later_gpu_jobs_but_not_cpu_jobs() -> None:
    verdicts = by_id(
        decide(
            Resources(gpus=4, cpu_slots=2),
            [Holding("h", "p", 2)],
            [job("big", "p", 4, age_s=30), job("one", "p", 1, age_s=20), job("cpu", "q", 0)],
            {},
            NOW,
        )
    )
    assert verdicts["big"].hold is HoldKind.CAPACITY
    assert verdicts["one"].hold is HoldKind.CAPACITY  # 2 GPUs free, but no backfill
    assert verdicts["one"].gpus_ahead == 4
    assert verdicts["cpu"].admitted


def test_cpu_jobs_wait_for_a_slot_and_are_told_the_runs_ahead() -> None:
    verdicts = decide(
        Resources(gpus=0, cpu_slots=2),
        [Holding("h1", "p", 0), Holding("h2", "q", 0)],
        [job("a", "p", 0, age_s=2), job("b", "p", 0, age_s=1)],
        {},
        NOW,
    )
    assert [(v.job_id, v.position, v.gpus_ahead, v.reason) for v in verdicts] == [
        ("a", 1, 0, "waiting for a CPU slot: 0 of 2 free"),
        ("b", 2, 0, "waiting for a CPU slot: 0 of 2 free, 1 run ahead in the queue"),
    ]


def test_a_job_its_quota_holds_does_not_block_other_projects() -> None:
    verdicts = by_id(
        decide(
            Resources(gpus=8, cpu_slots=1),
            [Holding("h", "p", 2)],
            [job("over", "p", 2, priority=5), job("other", "q", 4)],
            {"p": Quota(gpus=3)},
            NOW,
        )
    )
    assert verdicts["over"].hold is HoldKind.QUOTA_GPUS
    assert (
        verdicts["over"].reason == "waiting for 2 GPUs: its project uses 2 of its quota of 3 GPUs"
    )
    assert verdicts["other"].admitted


def test_a_project_at_its_run_quota_waits_for_one_of_its_runs_to_end() -> None:
    [verdict] = decide(
        Resources(gpus=8, cpu_slots=4),
        [Holding("h1", "p", 1), Holding("h2", "p", 0)],
        [job("third", "p", 0)],
        {"p": Quota(runs=2)},
        NOW,
    )
    assert verdict.hold is HoldKind.QUOTA_RUNS
    assert (
        verdict.reason
        == "waiting for a run to end: its project runs 2 of the 2 its quota allows at a time"
    )


def test_a_used_up_budget_holds_gpu_jobs_but_not_cpu_jobs() -> None:
    verdicts = by_id(
        decide(
            Resources(gpus=8, cpu_slots=2),
            [],
            [job("gpu", "p", 1), job("cpu", "p", 0)],
            {"p": Quota(budget_exhausted=True)},
            NOW,
        )
    )
    assert verdicts["gpu"].hold is HoldKind.BUDGET
    assert "GPU-hours" in verdicts["gpu"].reason
    assert verdicts["cpu"].admitted


def test_a_job_larger_than_the_platform_waits_without_blocking_the_rest() -> None:
    verdicts = by_id(
        decide(
            Resources(gpus=2, cpu_slots=1),
            [],
            [job("huge", "p", 4, priority=9), job("fits", "q", 2), job("next", "q", 1)],
            {},
            NOW,
        )
    )
    assert verdicts["huge"].hold is HoldKind.CAPACITY
    assert verdicts["huge"].reason == (
        "asks for 4 GPUs, but the platform has 2 in all: it cannot start until GPUs are added"
    )
    assert verdicts["fits"].admitted
    # it takes nothing before the others, so it is not counted ahead of them
    assert verdicts["next"].gpus_ahead == 0
    assert verdicts["next"].reason == "waiting for 1 GPU: 0 of 2 free"


def test_ageing_lifts_a_long_waiting_job_above_newer_higher_priority_ones() -> None:
    verdicts = decide(
        Resources(gpus=1, cpu_slots=1),
        [],
        [job("new", "p", 1, priority=1), job("old", "q", 1, priority=0, age_s=2 * AGEING_S)],
        {},
        NOW,
    )
    assert [(v.job_id, v.admitted) for v in verdicts] == [("old", True), ("new", False)]


def test_the_project_with_the_smaller_share_goes_first_among_equal_priorities() -> None:
    verdicts = decide(
        Resources(gpus=4, cpu_slots=1),
        [Holding("h", "p", 2)],
        [job("p-first", "p", 1, age_s=50), job("q-later", "q", 1), job("p-next", "p", 1, age_s=40)],
        {},
        NOW,
    )
    assert [v.job_id for v in verdicts if v.admitted] == ["q-later", "p-first"]


def test_the_share_is_weighed_by_the_projects_quota() -> None:
    # p holds 2 of its 8-GPU quota (a quarter), q 1 of its 2 (a half): p goes first
    verdicts = decide(
        Resources(gpus=4, cpu_slots=1),
        [Holding("hp", "p", 2), Holding("hq", "q", 1)],
        [job("q1", "q", 1, age_s=50), job("p1", "p", 1)],
        {"p": Quota(gpus=8), "q": Quota(gpus=2)},
        NOW,
    )
    assert [v.job_id for v in verdicts if v.admitted] == ["p1"]
    assert verdicts[1].hold is HoldKind.CAPACITY


def test_ageing_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ageing_s"):
        decide(Resources(gpus=1, cpu_slots=1), [], [], {}, NOW, ageing_s=0)
