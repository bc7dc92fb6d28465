"""Which namespace a trainer Job lives in: its project's, when TRAINYARD_K8S_PROJECT_NAMESPACES
maps the project's slug, else the training namespace TRAINYARD_K8S_NAMESPACE.

Decided once, when the attempt is launched (`namespace_for`); its AttemptHandle then carries
the namespace through workflow history, and everything later about the attempt (watch, logs,
stop, cleanup, a watch resumed by another worker) addresses the Job through `namespace_of`. So
a map edited while a job runs cannot send its cancel to a namespace the Job is not in.
"""

from __future__ import annotations

from trainyard_workflows.launchers.base import AttemptHandle
from trainyard_workflows.settings import WorkerSettings


def namespace_for(settings: WorkerSettings, project_slug: str | None) -> str:
    """Where a new attempt of a job of `project_slug` runs (None: a job without a project)."""
    if project_slug is not None and project_slug in settings.k8s_project_namespaces:
        return settings.k8s_project_namespaces[project_slug]
    return settings.k8s_namespace


def namespace_of(settings: WorkerSettings, handle: AttemptHandle) -> str:
    """Where a launched attempt's Job is: the namespace it was created in. A handle recorded
    before handles named it ("") is from before project namespaces: the training namespace."""
    return handle.namespace or settings.k8s_namespace


def training_namespaces(settings: WorkerSettings) -> list[str]:
    """Every namespace the launcher creates Jobs in (the reconciler looks in each), the
    training namespace first."""
    mapped = sorted(set(settings.k8s_project_namespaces.values()) - {settings.k8s_namespace})
    return [settings.k8s_namespace, *mapped]
