"""The admission step of TrainingWorkflow: a validated job asks the backend whether it may
take its GPUs or CPU slot now (trainyard/admission decides; the job waits QUEUED otherwise)."""

from __future__ import annotations

from temporalio import activity

from trainyard_workflows.activities.schemas import AdmissionResult
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
