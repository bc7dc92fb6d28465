"""Every log line of an activity names its job and attempt (telemetry/logs.py `bind_job`).

A worker interceptor rather than a line in each activity: it binds before the activity runs,
in the activity's own asyncio task, so nothing leaks into another activity's lines.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from trainyard_workflows.telemetry.logs import bind_job


def job_of(request: object) -> tuple[str, int | None] | None:
    """The job id and attempt an activity input speaks for. Inputs name the job in `job_id`
    itself, or through their `handle` (an AttemptHandle) or `training` (a TrainingInput)."""
    for holder in (request, getattr(request, "handle", None), getattr(request, "training", None)):
        job_id = getattr(holder, "job_id", None)
        if isinstance(job_id, str):
            attempt = getattr(request, "attempt", None)
            if attempt is None:
                attempt = getattr(holder, "attempt", None)
            return job_id, attempt if isinstance(attempt, int) else None
    return None


class _BindJob(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if len(input.args) == 1 and (job := job_of(input.args[0])) is not None:
            bind_job(*job)
        return await self.next.execute_activity(input)


class ActivityLogContext(Interceptor):
    """Binds the job id and attempt of each activity's input into its log lines."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindJob(super().intercept_activity(next))
