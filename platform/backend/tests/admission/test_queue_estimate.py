"""The estimated start of queued jobs, from the ledger's verdicts and the holders' ETAs."""

from __future__ import annotations

from trainyard.admission.estimate import Holder, estimated_waits, seconds_until_freed
from trainyard.admission.ledger import Holding, Quota, Resources, Waiting, decide

NOW = 1_000_000.0


def _waits(
    resources: Resources,
    holders: list[Holder],
    waiting: list[Waiting],
    quotas: dict[str, Quota] | None = None,
) -> dict[str, float | None]:
    """Through `decide`, as the API does: the holders hold, the waiting wait."""
    holding = [Holding(f"h{i}", h.project_id, h.gpus) for i, h in enumerate(holders)]
    verdicts = decide(resources, holding, waiting, quotas or {}, now=NOW)
    return estimated_waits(resources, holders, waiting, verdicts, quotas or {})


def _job(job_id: str, gpus: int, project: str = "p", at: float = NOW) -> Waiting:
    return Waiting(job_id, project, gpus, priority=0, submitted_at=at)


def test_nothing_to_free_starts_now_and_the_soonest_holders_free_first() -> None:
    assert seconds_until_freed(0, []) == 0.0
    assert seconds_until_freed(3, [(2, 50.0), (2, 10.0), (1, 30.0)]) == 30.0
    assert seconds_until_freed(1, [(1, -5.0)]) == 0.0  # overdue: any moment now


def test_unknown_when_a_needed_holder_has_no_eta_or_nothing_frees_enough() -> None:
    assert seconds_until_freed(2, [(1, 10.0), (1, None)]) is None
    assert seconds_until_freed(1, [(1, 10.0), (1, None)]) == 10.0  # the unknown one not needed
    assert seconds_until_freed(3, [(1, 10.0), (1, 20.0)]) is None


def test_gpu_jobs_wait_for_the_gpus_of_the_jobs_ahead_and_their_own() -> None:
    resources = Resources(gpus=4, cpu_slots=1)
    holders = [Holder("p", 2, 60.0), Holder("p", 1, 30.0), Holder("p", 1, 600.0)]

    waits = _waits(resources, holders, [_job("a", 2, at=NOW - 2), _job("b", 2, at=NOW - 1)])

    # a needs 2: the jobs ending in 30 s and 60 s free 3; b needs 2 more after a: 4 in all.
    assert waits == {"a": 60.0, "b": 600.0}


def test_cpu_jobs_wait_for_slots_one_per_job_ahead() -> None:
    resources = Resources(gpus=0, cpu_slots=2)
    holders = [Holder("p", 0, 100.0), Holder("p", 0, 40.0)]

    waits = _waits(
        resources,
        holders,
        [_job("a", 0, at=NOW - 3), _job("b", 0, at=NOW - 2), _job("c", 0, at=NOW - 1)],
    )

    assert waits == {"a": 40.0, "b": 100.0, "c": None}


def test_a_job_that_fits_now_waits_nothing_and_takes_its_share_first() -> None:
    resources = Resources(gpus=2, cpu_slots=1)
    holders = [Holder("p", 1, 50.0)]

    waits = _waits(resources, holders, [_job("fits", 1, at=NOW - 2), _job("next", 1, at=NOW - 1)])

    # "fits" takes the free GPU; "next" waits for the holder's.
    assert waits == {"fits": 0.0, "next": 50.0}


def test_a_quota_held_job_waits_for_its_own_projects_runs_only() -> None:
    resources = Resources(gpus=8, cpu_slots=8)
    holders = [Holder("small", 1, 300.0), Holder("big", 1, 5.0)]
    quotas = {"small": Quota(gpus=1, runs=5), "other": Quota(runs=1)}
    other_holder = Holder("other", 0, 70.0)

    waits = _waits(
        resources,
        [*holders, other_holder],
        [_job("g", 1, project="small"), _job("r", 0, project="other")],
        quotas,
    )

    # g: its project's own GPU ends in 300 s (the other project's in 5 s does not help it);
    # r: its project's only run ends in 70 s.
    assert waits == {"g": 300.0, "r": 70.0}


def test_a_budget_hold_or_a_job_larger_than_its_quota_has_no_estimate() -> None:
    resources = Resources(gpus=8, cpu_slots=8)
    quotas = {"spent": Quota(budget_exhausted=True), "capped": Quota(gpus=1)}

    waits = _waits(
        resources,
        [Holder("spent", 1, 10.0), Holder("capped", 1, 10.0)],
        [_job("b", 1, project="spent"), _job("q", 2, project="capped")],
        quotas,
    )

    assert waits == {"b": None, "q": None}
