"""Inputs and results of the tracking activities (one dataclass each, fields added with
defaults only, so running histories keep replaying)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartTrackingInput:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class TrackingRun:
    """The job's MLflow run."""

    run_id: str
    experiment_id: str


@dataclass(frozen=True)
class SyncTrackingInput:
    job_id: str
    run_id: str


@dataclass(frozen=True)
class FinishTrackingInput:
    job_id: str
    run_id: str
    # The job's terminal state (SUCCEEDED, FAILED, CANCELLED).
    state: str


@dataclass(frozen=True)
class FinishTrackingResult:
    """The run's final MLflow status and, for a succeeded job, its registered model version.
    `warnings` counts steps that failed (each also posted as a `tracking_warning` event)."""

    status: str | None
    model_name: str | None = None
    model_version: str | None = None
    warnings: int = 0
