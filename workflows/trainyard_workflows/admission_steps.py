"""TrainingWorkflow's part of admission (the backend decides, trainyard/admission): asking to
start and waiting QUEUED until admitted, and giving a preempted job's place back. A base class
of the workflow: what it reads and sets (`_admitted`, `_preempted_by`) is the workflow's state,
set by its `admitted` and `preempt` signals. Deterministic code only, like the workflow."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow

from trainyard_workflows import activity_options as options
from trainyard_workflows.job_states import TERMINAL_STATES

with workflow.unsafe.imports_passed_through():
    from trainyard_workflows.activities.admission_activities import AdmissionActivities
    from trainyard_workflows.activities.schemas import (
        AdmissionResult,
        ReportStateResult,
        RequeueInput,
    )


class AdmissionSteps:
    def __init__(self) -> None:
        # Set by the `admitted` signal: ask again now rather than at the next recheck.
        self._admitted = False
        # Set by the `preempt` signal: the job that this one's attempt gives way to.
        self._preempted_by: str | None = None

    async def _ask_until_admitted(self, job_id: str) -> AdmissionResult:
        """The backend's last answer: admitted, refused (it can never fit here), or the job
        ended while it waited. Asks again when signalled, or every ADMISSION_RECHECK."""
        while True:
            self._admitted = False
            answer: AdmissionResult = await workflow.execute_activity_method(
                AdmissionActivities.request_admission,
                job_id,
                start_to_close_timeout=options.REPORT_TIMEOUT,
                retry_policy=options.BACKEND_RETRY,
            )
            if answer.admitted or answer.refused is not None or answer.state in TERMINAL_STATES:
                return answer
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._admitted, timeout=options.ADMISSION_RECHECK
                )

    async def _back_to_queue(self, job_id: str, attempt: int, by: str) -> ReportStateResult:
        """The preempted job's trainer has stopped: QUEUED again (a `preempted` event names
        `by`), or the state it ended in meanwhile."""
        requeued: ReportStateResult = await workflow.execute_activity_method(
            AdmissionActivities.requeue_preempted,
            RequeueInput(job_id, attempt, by),
            start_to_close_timeout=options.REPORT_TIMEOUT,
            retry_policy=options.BACKEND_RETRY,
        )
        self._preempted_by = None
        return requeued
