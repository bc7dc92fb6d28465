"""Preemption (trainyard/admission/preemption.py): only strictly lower priorities give way, only
as many as make room, none when room is coming or can never be made."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.admission.ledger import HoldKind, Resources, Verdict, Waiting
from trainyard.admission.preemption import Preemption, Running, preemptions

GPUS = Resources(gpus=8, cpu_slots=2)


def _head(gpus: int, priority: int = 200) -> tuple[list[Verdict], dict[str, Waiting]]:
    job = Waiting("urgent", "p1", gpus, priority, 0.0)
    verdict = Verdict("urgent", False, 1, 0, HoldKind.CAPACITY, "waiting")
    return [verdict], {"urgent": job}


def test_the_lowest_priority_and_then_the_latest_admitted_give_way() -> None:
    running = [
        Running("old-low", 2, 0, admitted_at=10.0),
        Running("new-low", 2, 0, admitted_at=20.0),
        Running("normal", 4, 100, admitted_at=5.0),
    ]
    verdicts, waiting = _head(gpus=2)

    assert preemptions(GPUS, running, verdicts, waiting) == [Preemption("new-low", "urgent")]


def test_a_big_victim_taken_last_spares_the_small_one_taken_first() -> None:
    running = [Running("small", 1, 0, 30.0), Running("big", 4, 50, 10.0), Running("x", 3, 300, 1.0)]
    verdicts, waiting = _head(gpus=4)

    assert preemptions(GPUS, running, verdicts, waiting) == [Preemption("big", "urgent")]


def test_nobody_gives_way_to_an_equal_or_lower_priority() -> None:
    running = [Running("a", 4, 200, 1.0), Running("b", 4, 300, 2.0)]
    verdicts, waiting = _head(gpus=2)

    assert preemptions(GPUS, running, verdicts, waiting) == []


def test_nobody_gives_way_when_room_is_already_coming() -> None:
    running = [Running("leaving", 4, 0, 1.0, giving_way=True), Running("low", 4, 0, 2.0)]
    verdicts, waiting = _head(gpus=4)

    assert preemptions(GPUS, running, verdicts, waiting) == []


def test_nobody_gives_way_for_a_job_that_could_never_fit_or_one_its_quota_holds() -> None:
    running = [Running("low", 8, 0, 1.0)]
    verdicts, waiting = _head(gpus=16)
    assert preemptions(GPUS, running, verdicts, waiting) == []

    verdicts, waiting = _head(gpus=2)
    quota_held = [Verdict("urgent", False, 1, 0, HoldKind.QUOTA_GPUS, "its quota")]
    assert preemptions(GPUS, running, quota_held, waiting) == []


def test_cpu_jobs_preempt_cpu_jobs_only() -> None:
    running = [
        Running("gpu-low", 8, 0, 1.0),
        Running("cpu-low", 0, 0, 2.0),
        Running("cpu", 0, 0, 3.0),
    ]
    verdicts, waiting = _head(gpus=0)

    assert preemptions(GPUS, running, verdicts, waiting) == [Preemption("cpu", "urgent")]


_running = st.lists(
    st.builds(
        Running,
        job_id=st.uuids().map(str),
        gpus=st.integers(1, 4),
        priority=st.sampled_from([0, 100, 200, 300]),
        admitted_at=st.floats(0, 1000),
        giving_way=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda job: job.job_id,
)


@settings(database=None, derandomize=True, deadline=None, max_examples=200)
@given(running=_running, gpus=st.integers(1, 8), priority=st.sampled_from([0, 100, 200, 300]))
def test_victims_are_lower_priority_make_room_and_none_is_spare(
    running: list[Running], gpus: int, priority: int
) -> None:
    capacity = Resources(gpus=max(8, sum(job.gpus for job in running)), cpu_slots=1)
    verdicts, waiting = _head(gpus, priority)
    held = sum(job.gpus for job in running)
    free_soon = capacity.gpus - held + sum(job.gpus for job in running if job.giving_way)

    chosen = preemptions(capacity, running, verdicts, waiting)

    by_id = {job.job_id: job for job in running}
    victims = [by_id[p.victim] for p in chosen]
    assert all(p.preemptor == "urgent" for p in chosen)
    assert all(v.priority < priority and not v.giving_way for v in victims)
    if free_soon >= gpus:
        assert victims == []
    if victims:
        freed = sum(v.gpus for v in victims)
        assert free_soon + freed >= gpus  # room made
        assert all(free_soon + freed - v.gpus < gpus for v in victims)  # none spare
