"""The planners' read-only view of the user's world, from the database (project-scoped)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.capacity_store import current_capacity
from trainyard.admission.priorities import PRIORITY_NAMES, PriorityName
from trainyard.admission.submit_rules import priority_refusal
from trainyard.auth.models import Project
from trainyard.auth.roles import Role
from trainyard.chat.completion import complete
from trainyard.chat.plan import DatasetSummary, JobSummary, PlanDraft
from trainyard.core.settings import BackendSettings
from trainyard.datasets.models import Dataset
from trainyard.frameworks import models_by_framework
from trainyard.jobs.models import Job
from trainyard_workflows.capacity import Capacity


def dataset_summary(dataset: Dataset) -> DatasetSummary:
    """A dataset as the plan card shows it: status, classes and images from its report."""
    report: dict[str, Any] = dataset.report or {}
    histogram = report.get("class_histogram") or {}
    counts = report.get("counts") or {}
    images = sum(int(split.get("images", 0)) for split in counts.values()) if counts else None
    return DatasetSummary(
        name=dataset.name,
        status=dataset.status,
        format=dataset.format,
        classes=len(histogram) if histogram else None,
        class_names=sorted(histogram)[:50],
        images=images,
        warnings=len(report.get("warnings") or []),
        errors=len(report.get("errors") or []),
    )


def job_summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id,
        framework=job.framework,
        model=job.model,
        dataset=job.dataset,
        epochs=job.epochs,
        imgsz=job.imgsz,
        batch=job.batch,
        gpus=job.gpus,
        state=job.state,
        hyperparameters=dict(job.hyperparameters or {}),
    )


# Opens a session for one read: `Database.session` (each read its own short unit of work, so
# no transaction stays open while a language model answers) or `reading_with(session)`.
SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def reading_with(session: AsyncSession) -> SessionOpener:
    """Every read in `session` (a request's unit of work that makes no network call)."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[AsyncSession]:
        yield session

    return opener


class DatabaseContext:
    """`PlannerContext` (and completion's `CompletionContext`) over the database."""

    def __init__(
        self,
        sessions: SessionOpener,
        settings: BackendSettings,
        project_id: str,
        role: Role | None = None,
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        # The planner sees and proposes only this project's datasets and runs.
        self.project_id = project_id
        # The caller's role there: the priority they may ask for (None: a member's cap).
        self.role = role

    async def datasets(self) -> list[DatasetSummary]:
        query = select(Dataset).where(Dataset.project_id == self.project_id).order_by(Dataset.name)
        async with self._sessions() as session:
            return [dataset_summary(d) for d in (await session.execute(query)).scalars()]

    async def models(self) -> dict[str, list[str]]:
        return models_by_framework()

    async def recent_jobs(self, limit: int = 5) -> list[JobSummary]:
        query = (
            select(Job)
            .where(Job.project_id == self.project_id)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            return [job_summary(job) for job in (await session.execute(query)).scalars()]

    async def finished_jobs(self, model: str, limit: int = 10) -> list[Job]:
        """The project's newest SUCCEEDED jobs of `model` (for the duration estimate)."""
        query = (
            select(Job)
            .where(Job.project_id == self.project_id, Job.model == model, Job.state == "SUCCEEDED")
            .order_by(Job.created_at.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())

    async def capacity(self) -> Capacity | None:
        async with self._sessions() as session:
            return await current_capacity(session)

    async def priority_refusals(self) -> dict[PriorityName, str]:
        """The levels the caller may not ask for here, each with submit's reason."""
        async with self._sessions() as session:
            project = await session.get(Project, self.project_id)
        if project is None:  # gone since the permit found it: submit will say so
            return {}
        refusals = {name: priority_refusal(project, self.role, name) for name in PRIORITY_NAMES}
        return {name: reason for name, reason in refusals.items() if reason is not None}

    async def problems(self, draft: PlanDraft) -> list[str]:
        """What is wrong with the values the draft gives (an unknown model, too many GPUs, a
        dataset the user does not have). Values it leaves out are not problems: the card asks
        for them."""
        plan = await complete(draft, self)
        given = draft.request.model_dump(exclude_none=True)
        return [
            question.question
            for question in plan.questions
            if question not in draft.questions and question.field in given
        ]
