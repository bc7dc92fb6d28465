"""Reclaiming what launchers left behind: trainer Jobs that hold GPUs for jobs that have ended
(or that the platform no longer knows), and Secrets whose Job never came to own them.

Only a definite answer from the backend deletes anything: if it cannot be asked, the activity
fails (and is retried) rather than guess. Finished Jobs of ended jobs are left to Kubernetes'
ttlSecondsAfterFinished, so their logs stay readable for a while.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from temporalio import activity

from trainyard_workflows.backend_client import BackendClient, BackendError
from trainyard_workflows.internal_api import Liveness
from trainyard_workflows.job_states import TERMINAL_STATES
from trainyard_workflows.launchers.base import LaunchedObject, Launcher
from trainyard_workflows.telemetry.metrics import RECONCILER_REMOVALS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    """What one pass looked at and what it deleted (the reconcile workflow's result)."""

    examined: int
    removed: list[LaunchedObject] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def reclaim_reason(launched: LaunchedObject, job: Liveness | None) -> str | None:
    """Why `launched` should go, or None to keep it. An owned Secret always stays: it goes
    with its Job."""
    if launched.kind == "Secret" and launched.owned:
        return None
    if job is None:
        return f"job {launched.job_id} is unknown to the platform"
    ended = job.state in TERMINAL_STATES
    stale = launched.attempt != job.attempt
    if launched.kind == "Job" and launched.active:
        if ended:
            return f"job {launched.job_id} is {job.state} but its trainer Job still runs"
        if stale:
            return f"attempt {launched.attempt} was replaced by attempt {job.attempt}"
    if launched.kind == "Secret" and (ended or stale):
        return f"a Secret of attempt {launched.attempt} that no Job owns"
    return None


class ReconcileActivities:
    def __init__(self, backend: BackendClient, launcher: Launcher) -> None:
        self._backend = backend
        self._launcher = launcher

    @activity.defn
    async def reconcile_launched(self) -> ReconcileReport:
        """Delete the launched objects no live attempt needs; report what went and why."""
        launched = await self._launcher.launched_objects()
        jobs: dict[str, Liveness | None] = {}
        removed: list[LaunchedObject] = []
        reasons: list[str] = []
        for item in launched:
            activity.heartbeat()
            if item.job_id not in jobs:
                jobs[item.job_id] = await self._backend.find_liveness(item.job_id)
            reason = reclaim_reason(item, jobs[item.job_id])
            if reason is None or not await self._launcher.delete_launched(item):
                continue
            logger.warning("reclaimed %s %s/%s: %s", item.kind, item.namespace, item.name, reason)
            RECONCILER_REMOVALS.inc()
            removed.append(item)
            reasons.append(reason)
            if jobs[item.job_id] is not None:
                await self._record(item, reason)
        return ReconcileReport(examined=len(launched), removed=removed, reasons=reasons)

    async def _record(self, item: LaunchedObject, reason: str) -> None:
        """Put the removal on the job's timeline; best effort (the report has it anyway)."""
        try:
            await self._backend.post_event(
                item.job_id,
                "attempt_reclaimed",
                f"reclaimed {item.kind} {item.namespace}/{item.name}: {reason}",
                {"object": asdict(item), "reason": reason},
            )
        except BackendError as error:
            logger.warning("job %s: could not record a reclaim: %s", item.job_id, error)
