"""What the trainer's callbacks do to a job. The caller already verified the token's signature
and that it names this job (see callbacks.router); here the job's own state decides the rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.callbacks.schemas import Done, Heartbeat, TrainerEvent
from trainyard.callbacks.tokens import TokenClaims
from trainyard.core.db import after_commit
from trainyard.core.errors import Forbidden, InvalidRequest
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.events import (
    JobView,
    append_event,
    lock_job,
    refuse_if_terminal,
    transition,
)
from trainyard.jobs.models import Job, JobEvent
from trainyard.jobs.orchestration import signal_trainer_done
from trainyard_workflows.attempt_outputs import (
    AttemptOutput,
    LocationRefused,
    checkpoint_fingerprint,
    confined,
)
from trainyard_workflows.contracts import TrainerDone
from trainyard_workflows.event_types import CHECKPOINT_SAVED
from trainyard_workflows.job_states import DONE_STATUS_TO_STATE, JobState


class StaleAttempt(Forbidden):
    code = "stale_attempt"


def check_reporter(job: JobView, claims: TokenClaims) -> None:
    """The callback rule, for every callback path (the heartbeat ingest included): only the
    job's current attempt may report (403 stale), not once it was preempted back to QUEUED
    (403: its next attempt will), and only until the job ended (409). A job Kueue holds is
    QUEUED too, but its attempt's trainer is the one Kueue is about to start: its first
    callback may beat the worker's word that Kueue admitted it."""
    if claims.attempt != job.attempt:
        raise StaleAttempt(
            f"the token is for attempt {claims.attempt} but job {job.id} is at attempt "
            f"{job.attempt}: this trainer is no longer the job's trainer"
        )
    if job.state == JobState.QUEUED and not job.held_externally:
        raise StaleAttempt(
            f"job {job.id} was preempted and waits in the queue: attempt {claims.attempt} "
            "has ended, the next attempt reports"
        )
    refuse_if_terminal(job)


async def authorized_job(session: AsyncSession, claims: TokenClaims) -> Job:
    """The job, locked, if this attempt may still report on it (`check_reporter`)."""
    job = await lock_job(session, claims.job_id)
    check_reporter(job, claims)
    return job


def _system(beat: Heartbeat) -> dict[str, Any] | None:
    return None if beat.system is None else beat.system.model_dump(mode="json", exclude_none=True)


def heartbeat_data(beat: Heartbeat) -> dict[str, Any]:
    """The heartbeat event's data: the body as sent, its ``system`` without absent fields (and
    no ``system`` key from a trainer that sends none)."""
    data = beat.model_dump(mode="json", exclude={"system"})
    system = _system(beat)
    if system is not None:
        data["system"] = system
    return data


def merged_progress(previous: dict[str, Any] | None, beat: Heartbeat) -> dict[str, Any]:
    """Progress never moves backwards: a late or duplicated heartbeat cannot undo a newer one.

    ``system`` is the newest heartbeat's system metrics (what /metrics and the job page show
    as the run's current state); absent when that heartbeat carried none."""
    fresh: dict[str, Any] = {
        "epoch": beat.epoch,
        "epochs": beat.epochs,
        "metrics": dict(beat.metrics),
        "elapsed_s": beat.elapsed_s,
        "eta_s": beat.eta_s,
    }
    system = _system(beat)
    if system is not None:
        fresh["system"] = system
    if previous is None:
        return fresh
    known_epoch = int(previous.get("epoch", 0))
    if beat.epoch < known_epoch:
        return previous
    if beat.epoch == known_epoch:
        # A keep-alive within the epoch carries no metrics: keep the epoch's last ones.
        if not beat.metrics:
            fresh["metrics"] = previous.get("metrics", {})
        old_elapsed = previous.get("elapsed_s")
        if old_elapsed is not None and (beat.elapsed_s is None or beat.elapsed_s < old_elapsed):
            # An older heartbeat of the same epoch: its time and system metrics are stale.
            fresh["elapsed_s"] = old_elapsed
            fresh["eta_s"] = previous.get("eta_s")
            fresh.pop("system", None)
            if "system" in previous:
                fresh["system"] = previous["system"]
    return fresh


class LocationOutsideAttempt(InvalidRequest):
    """A trainer reported a file outside its attempt's output (422); nothing is stored."""

    code = "location_outside_attempt"


def _attempt_output(job: Job) -> AttemptOutput | None:
    return None if job.attempt_output is None else AttemptOutput.model_validate(job.attempt_output)


def _confine(job: Job, field: str, location: object) -> None:
    """The rule for every location a trainer reports (attempt_outputs.confined)."""
    output = _attempt_output(job)
    if output is None:
        raise LocationOutsideAttempt.on(
            field, "this attempt has no recorded output: it may report no files"
        )
    if not isinstance(location, str):
        raise LocationOutsideAttempt.on(field, "a location must be a string")
    try:
        confined(location, output)
    except LocationRefused as refused:
        raise LocationOutsideAttempt.on(field, str(refused)) from refused


def _check_checkpoint(job: Job, data: dict[str, Any]) -> None:
    """A `checkpoint_saved` names its file inside the attempt's output, with its size and
    SHA-256 (what the next attempt verifies before loading it)."""
    _confine(job, "data.path", data.get("path"))
    if "best" in data:
        _confine(job, "data.best", data["best"])
    if checkpoint_fingerprint(data) is None:
        raise InvalidRequest.on(
            "data", "a checkpoint_saved event needs data.size (bytes) and data.sha256 (hex)"
        )


async def trainer_event(session: AsyncSession, claims: TokenClaims, body: TrainerEvent) -> JobEvent:
    job = await authorized_job(session, claims)
    if body.type == CHECKPOINT_SAVED:
        _check_checkpoint(job, body.data)
    return append_event(session, job, body.type, "trainer", body.message, body.data)


async def done(
    session: AsyncSession, temporal: TemporalGateway, claims: TokenClaims, body: Done
) -> JobEvent:
    """Record the outcome, end the job, and (after commit) signal the workflow.

    A trainer stopped by a SIGTERM the platform did not send (its pod preempted or drained, a
    kill -TERM) also reports `cancelled`; without a cancel request that ends the attempt, not
    the job: the workflow starts the next attempt, resuming from the newest checkpoint.
    """
    job = await authorized_job(session, claims)
    for name, location in body.artifacts.items():
        _confine(job, f"artifacts.{name}", location)
    reason = body.reason
    if body.status == "failed" and not reason:
        reason = "the trainer reported a failure without a reason"
    interrupted = body.status == "cancelled" and not job.cancel_requested
    if interrupted:
        message = f"trainer of attempt {claims.attempt} stopped without a cancel request"
    else:
        message = f"trainer finished: {body.status}" + (f" ({reason})" if reason else "")
    event = append_event(session, job, "done", "trainer", message, body.model_dump(mode="json"))
    if not interrupted:
        job.result = {"metrics": dict(body.metrics), "artifacts": dict(body.artifacts)}
        transition(session, job, DONE_STATUS_TO_STATE[body.status], "trainer", reason)
    signal = TrainerDone(attempt=claims.attempt, status=body.status, reason=reason)
    job_id = job.id

    async def _signal() -> None:
        await signal_trainer_done(temporal, job_id, signal)

    after_commit(session, _signal)
    return event
