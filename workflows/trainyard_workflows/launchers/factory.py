"""Picks the launcher of the configured tier (TRAINYARD_LAUNCHER)."""

from __future__ import annotations

from trainyard_workflows.launchers.base import Launcher
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.launchers.trainer_user import trainer_user_from
from trainyard_workflows.settings import WorkerSettings


def build_launcher(settings: WorkerSettings) -> Launcher:
    """The one place that maps `settings.launcher` to an implementation."""
    match settings.launcher:
        case "subprocess":
            return SubprocessLauncher(
                settings.trainers_dir, trainer_user_from(settings.trainer_user)
            )
        case "kubernetes":
            return KubernetesLauncher(settings)
