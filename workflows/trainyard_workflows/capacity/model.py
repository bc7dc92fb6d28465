"""The capacity a worker reports, and the one rule read from it at submit: could a job asking
for some GPUs ever run here? (Whether it fits *now* is the admission ledger's question.)"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Who decides when a trainer may start: the platform's own ledger, or Kueue on Kubernetes (the
# ledger then leaves capacity to Kueue and keeps quotas and budgets: docs/decisions/017).
AdmissionQueue = Literal["platform", "kueue"]


class Capacity(BaseModel):
    """Body of `PUT /internal/v1/capacity`; the backend stores the newest one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Every GPU trainers may use (all nodes together on Kubernetes).
    gpus: int = Field(ge=0)
    # The most one job can get: the machine's GPUs, or the biggest node's (a job's pod runs
    # on one node).
    largest_node_gpus: int = Field(ge=0)
    # CPU-only runs at a time (a job with gpus == 0 takes one slot).
    cpu_slots: int = Field(ge=1)
    # Where `gpus` comes from: "nvml", "nvidia-smi", "configured", "kubernetes" or "none".
    source: str = Field(max_length=32)
    queue: AdmissionQueue = "platform"

    @model_validator(mode="after")
    def _node_within_total(self) -> Capacity:
        if self.largest_node_gpus > self.gpus:
            raise ValueError(
                f"largest_node_gpus ({self.largest_node_gpus}) exceeds gpus ({self.gpus})"
            )
        return self


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def never_fits(capacity: Capacity, gpus: int) -> str | None:
    """None when a job asking for `gpus` GPUs could run here once enough is free; otherwise one
    sentence, for the submitter, saying what exists and what to ask for instead."""
    if gpus <= capacity.largest_node_gpus:
        return None
    if capacity.gpus == 0:
        runs = _count(capacity.cpu_slots, "run")
        return f"this platform has no GPU (it trains on the CPU, {runs} at a time): ask for 0 GPUs"
    asked = _count(gpus, "GPU")
    most = capacity.largest_node_gpus
    if most == capacity.gpus:  # one machine, or every GPU on one node
        return f"this job asks for {asked}, but this platform has {most}: ask for at most {most}"
    return (
        f"this job asks for {asked}, but the largest node has {most} ({capacity.gpus} in all): "
        f"ask for at most {most}"
    )
