"""The admission step of TrainingWorkflow: a validated job asks the backend whether it may
take its GPUs or CPU slot now (trainyard/admission decides; the job waits QUEUED otherwise)."""

from __future__ import annotations

from temporalio import activity

from trainyard_workflows.activities.schemas import (
    AdmissionResult,
    ReportStateResult,
    RequeueInput,
)
from trainyard_workflows.backend_client import BackendClient


class AdmissionActivities:
    def __init__(self, backend: BackendClient) -> None:
        self._backend = backend

    @activity.defn
    async def request_admission(self, job_id: str) -> AdmissionResult:
        """Admitted now, or QUEUED with its place and reason (idempotent: asking again after
        admission answers admitted)."""
        answer = await self._backend.request_admission(job_id)
        return AdmissionResult(
            admitted=answer.admitted,
            state=answer.state.value,
            refused=answer.refused,
            position=answer.position,
            reason=answer.reason,
        )

    @activity.defn
    async def requeue_preempted(self, request: RequeueInput) -> ReportStateResult:
        """Back to QUEUED after giving way (applied), or the state it ended in meanwhile."""
        result = await self._backend.requeue(request.job_id, request.attempt, request.by)
        if result.applied:
            return ReportStateResult(applied=True, state="QUEUED")
        liveness = await self._backend.liveness(request.job_id)
        return ReportStateResult(applied=False, state=liveness.state.value)
