"""Launchers start, watch and stop one trainer process per attempt (subprocess, later k8s)."""

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
