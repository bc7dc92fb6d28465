"""ReconcileWorkflow: one pass of the reconciler, started by a Temporal schedule.

The worker makes sure the schedule exists when trainers run on Kubernetes (where a leftover
Job holds a GPU); each run's result lists what was removed and why (Temporal UI, `temporal
workflow show`), and each removal is also an event on its job's timeline.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from trainyard_workflows.activities.reconcile_activities import (
        ReconcileActivities,
        ReconcileReport,
    )

RECONCILE_WORKFLOW = "ReconcileLaunched"
RECONCILE_SCHEDULE_ID = "trainyard-reconcile"


@workflow.defn(name=RECONCILE_WORKFLOW)
class ReconcileWorkflow:
    @workflow.run
    async def run(self) -> ReconcileReport:
        return await workflow.execute_activity_method(
            ReconcileActivities.reconcile_launched,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


async def ensure_reconcile_schedule(client: Client, task_queue: str, every: timedelta) -> bool:
    """Create the reconciler's schedule unless it exists; True if this call created it."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW, id=f"{RECONCILE_SCHEDULE_ID}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A pass still running when the next is due makes the next one pointless.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True
