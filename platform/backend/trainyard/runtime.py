"""The long-lived objects of one backend process, made in the lifespan and kept on app.state."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from trainyard.admission.trigger import AdmissionTrigger
from trainyard.auth.authenticate import Authenticator
from trainyard.core.bus import EventBus
from trainyard.core.db import Database
from trainyard.core.rate_limits import RateLimiter
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard.stream.fanout import StreamFanout


@dataclass(frozen=True)
class Runtime:
    settings: BackendSettings
    db: Database
    bus: EventBus
    fanout: StreamFanout  # the live streams of this process, one bus subscription per job
    temporal: TemporalGateway
    authenticator: Authenticator  # who is calling (trainyard.deps.current_principal)
    rate_limiter: RateLimiter  # submissions, chat, uploads, failed sign-ins (deps.RateLimited)

    @functools.cached_property
    def admission(self) -> AdmissionTrigger:
        """Admits queued jobs when a job ends or capacity grows (trainyard/admission)."""
        return AdmissionTrigger(self.db, self.temporal, self.settings.preemption != "off")

    @functools.cached_property
    def workflows(self) -> WorkflowStarter:
        """Starts jobs' workflows and delivers cancels, after their commit (and in the sweep)."""
        return WorkflowStarter(self.db, self.temporal, self.settings)


def runtime_of(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime
