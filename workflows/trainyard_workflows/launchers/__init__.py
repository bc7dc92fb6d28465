"""Launchers start, watch and stop one trainer per attempt (a local process or a Kubernetes Job)."""

from trainyard_workflows.launchers.base import (
    AttemptHandle,
    AttemptStatus,
    Launcher,
    LaunchRequest,
    TrainerNotInstalledError,
)

__all__ = [
    "AttemptHandle",
    "AttemptStatus",
    "LaunchRequest",
    "Launcher",
    "TrainerNotInstalledError",
]
