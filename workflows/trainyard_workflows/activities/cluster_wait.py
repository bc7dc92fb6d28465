"""What the watch has told about the cluster's doings with an attempt (pending reasons,
disruptions, reasons that waiting does not fix)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from trainyard_workflows.internal_api import ExternalQueuePlace
from trainyard_workflows.launchers.base import PendingReason


@dataclass
class ClusterWait:
    """What the watch has told about the cluster's doings, so each change is told once."""

    reported_pending: list[PendingReason] = field(default_factory=list)
    # Pods the cluster took away (preemption, eviction, node drain), seen at the last poll.
    disrupted: list[PendingReason] = field(default_factory=list)
    # Reasons that waiting does not fix, and since when (the last poll without one).
    stuck: list[PendingReason] = field(default_factory=list)
    stuck_since: float = field(default_factory=time.time)
    # Where Kueue held the attempt at the last poll, as told to the backend (None: it does not).
    queued_in: ExternalQueuePlace | None = None
