"""The watch's part that follows the cluster: what it did to an attempt since the last poll
(took its pod away, keeps it waiting and why, holds it in Kueue's queue), told to the job's
timeline once per change."""

from __future__ import annotations

import logging
import time

from trainyard_workflows.activities.backend_calls import post_event_quietly, quietly
from trainyard_workflows.activities.cluster_wait import ClusterWait
from trainyard_workflows.backend_client import BackendClient, BackendError
from trainyard_workflows.launchers.base import (
    UNSTARTABLE_REASONS,
    AttemptHandle,
    Launcher,
    PendingReason,
)

logger = logging.getLogger(__name__)


class ClusterFollower:
    """Reads the launcher's view of an attempt and reports its changes to the backend."""

    def __init__(self, backend: BackendClient, launcher: Launcher, poll_s: float) -> None:
        self._backend = backend
        self._launcher = launcher
        self._poll_s = poll_s

    async def follow(self, handle: AttemptHandle, cluster: ClusterWait) -> bool:
        """Report what the cluster did to the attempt since the last poll; True while it makes
        the attempt wait."""
        disruptions = await quietly(
            self._launcher.disruptions(handle), handle.job_id, self._poll_s, []
        )
        for disruption in disruptions:
            await self._report_disruption(handle, disruption)
        cluster.disrupted = disruptions
        if disruptions:
            return False
        await self._follow_queue(handle, cluster)
        pending = await quietly(
            self._launcher.pending_reasons(handle), handle.job_id, self._poll_s, []
        )
        if pending != cluster.reported_pending:
            await self._report_pending(handle, pending)
            cluster.reported_pending = pending
        cluster.stuck = [reason for reason in pending if reason.reason in UNSTARTABLE_REASONS]
        if not cluster.stuck:
            cluster.stuck_since = time.time()
        return bool(pending)

    async def _report_disruption(self, handle: AttemptHandle, disruption: PendingReason) -> None:
        # Kueue names the job it preempted this one for (`by`, in the event's data too).
        taken = f"gave way to {disruption.by}" if disruption.by else "lost its pod to the cluster"
        message = (
            f"attempt {handle.attempt} {taken} ({disruption}); a new attempt resumes from the "
            "newest checkpoint, not counted as a failure"
        )
        await post_event_quietly(
            self._backend,
            handle.job_id,
            "attempt_disrupted",
            message[:2000],
            {"attempt": handle.attempt, **disruption.as_data()},
        )

    async def _follow_queue(self, handle: AttemptHandle, cluster: ClusterWait) -> None:
        """Tell the backend where Kueue holds the attempt (the job waits in QUEUED with it),
        and when Kueue admitted it (back to STARTING)."""
        place = await quietly(
            self._launcher.queued_in(handle), handle.job_id, self._poll_s, cluster.queued_in
        )
        if place == cluster.queued_in:
            return
        try:
            await self._backend.report_external_queue(handle.job_id, handle.attempt, place)
        except BackendError as error:  # the next poll tells it again
            logger.warning("job %s: could not report its queue place: %s", handle.job_id, error)
            return
        cluster.queued_in = place

    async def _report_pending(self, handle: AttemptHandle, pending: list[PendingReason]) -> None:
        """One event per change of why the attempt waits, so the stream shows it live."""
        if pending:
            message = f"attempt {handle.attempt} is waiting to run: {'; '.join(map(str, pending))}"
        else:
            message = f"attempt {handle.attempt} is no longer waiting"
        await post_event_quietly(
            self._backend,
            handle.job_id,
            "attempt_pending",
            message[:2000],
            {"attempt": handle.attempt, "reasons": [p.as_data() for p in pending]},
        )
