"""The rule read from a worker's capacity at submit and in the plan card: could a job asking
for some GPUs ever run here, and if not, one sentence saying what exists."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainyard_workflows.capacity import Capacity, never_fits

CPU_ONLY = Capacity(gpus=0, largest_node_gpus=0, cpu_slots=2, source="none")
ONE_MACHINE = Capacity(gpus=2, largest_node_gpus=2, cpu_slots=4, source="nvml")
CLUSTER = Capacity(gpus=8, largest_node_gpus=2, cpu_slots=4, source="kubernetes")


@pytest.mark.parametrize(
    ("capacity", "gpus"),
    [(CPU_ONLY, 0), (ONE_MACHINE, 0), (ONE_MACHINE, 2), (CLUSTER, 1), (CLUSTER, 2)],
)
def test_a_job_within_the_largest_node_fits(capacity: Capacity, gpus: int) -> None:
    assert never_fits(capacity, gpus) is None


def test_gpus_never_fit_a_cpu_only_platform_and_the_sentence_says_it_trains_on_the_cpu() -> None:
    assert never_fits(CPU_ONLY, 2) == (
        "this platform has no GPU (it trains on the CPU, 2 runs at a time): ask for 0 GPUs"
    )
    one_slot = CPU_ONLY.model_copy(update={"cpu_slots": 1})
    assert never_fits(one_slot, 1) == (
        "this platform has no GPU (it trains on the CPU, 1 run at a time): ask for 0 GPUs"
    )


def test_more_gpus_than_one_machine_has_never_fit() -> None:
    assert never_fits(ONE_MACHINE, 4) == (
        "this job asks for 4 GPUs, but this platform has 2: ask for at most 2"
    )


def test_more_gpus_than_the_largest_node_never_fit_even_when_the_cluster_has_more() -> None:
    assert never_fits(CLUSTER, 4) == (
        "this job asks for 4 GPUs, but the largest node has 2 (8 in all): ask for at most 2"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"gpus": -1, "largest_node_gpus": 0, "cpu_slots": 1, "source": "none"},
        {"gpus": 0, "largest_node_gpus": 0, "cpu_slots": 0, "source": "none"},
        {"gpus": 2, "largest_node_gpus": 4, "cpu_slots": 1, "source": "kubernetes"},
        {"gpus": 0, "largest_node_gpus": 0, "cpu_slots": 1, "source": "x" * 33},
        {"gpus": 0, "largest_node_gpus": 0, "cpu_slots": 1, "source": "none", "extra": 1},
    ],
)
def test_an_impossible_capacity_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Capacity.model_validate(fields)
