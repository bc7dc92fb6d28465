"""Bodies the backend writes for the worker alone (those both sides build or parse live in
trainyard_workflows.internal_api)."""

from __future__ import annotations

from trainyard.jobs.schemas import JobRead
from trainyard_workflows.attempt_outputs import AttemptOutput


class InternalJobRead(JobRead):
    """The job as the worker reads it: the public read plus its project's slug, which picks
    the Kubernetes namespace of its trainers and tags its MLflow run (`trainyard.project`)."""

    project_slug: str
    # Where the current attempt may write: the worker reads artifacts from nowhere else.
    attempt_output: AttemptOutput | None = None
