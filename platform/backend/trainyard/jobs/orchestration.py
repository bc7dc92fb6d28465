"""The jobs domain's calls to Temporal: start, cancel and signal a job's training workflow."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from trainyard.admission.preemption import Preemption
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.models import Job
from trainyard_workflows.contracts import (
    ADMITTED_SIGNAL,
    PREEMPT_SIGNAL,
    TRAINER_DONE_SIGNAL,
    WORKFLOW_NAME,
    Preempt,
    TrainerDone,
    TrainingInput,
    workflow_id_for,
)

logger = logging.getLogger(__name__)


def training_input(job: Job, settings: BackendSettings) -> TrainingInput:
    return TrainingInput(
        job_id=job.id,
        framework=job.framework,
        model=job.model,
        dataset_uri=job.dataset_uri,
        task=job.task,
        epochs=job.epochs,
        imgsz=job.imgsz,
        batch=job.batch,
        gpus=job.gpus,
        hyperparameters=dict(job.hyperparameters),
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        max_attempts=settings.max_attempts,
        max_interruptions=settings.max_interruptions,
    )


async def start_training(
    gateway: TemporalGateway, training: TrainingInput, task_queue: str
) -> None:
    """Start the job's workflow; one that already runs for this job is fine (a second start)."""
    client = await gateway.client()
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            training,
            id=workflow_id_for(training.job_id),
            task_queue=task_queue,
            rpc_timeout=gateway.rpc_timeout,
        )
    except WorkflowAlreadyStartedError:
        logger.info("workflow for %s already started", training.job_id)
    except RPCError as exc:
        raise gateway.unavailable(exc) from exc


async def cancel_training(gateway: TemporalGateway, job_id: str) -> bool:
    """Ask the job's workflow to cancel. False when no workflow runs for the job (any more)."""
    client = await gateway.client()
    handle = client.get_workflow_handle(workflow_id_for(job_id))
    try:
        # Cancelling a closed workflow succeeds silently, so ask whether it still runs first.
        description = await handle.describe(rpc_timeout=gateway.rpc_timeout)
        if description.status != WorkflowExecutionStatus.RUNNING:
            return False
        await handle.cancel(reason="cancelled through the API", rpc_timeout=gateway.rpc_timeout)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise gateway.unavailable(exc) from exc
    return True


async def signal_trainer_done(gateway: TemporalGateway, job_id: str, done: TrainerDone) -> None:
    """Tell the workflow the trainer finished; logged, never raised (the job is already updated)."""
    try:
        client = await gateway.client()
        handle = client.get_workflow_handle(workflow_id_for(job_id))
        await handle.signal(TRAINER_DONE_SIGNAL, done, rpc_timeout=gateway.rpc_timeout)
    except Exception:
        logger.warning(
            "could not signal %s to the workflow of %s", TRAINER_DONE_SIGNAL, job_id, exc_info=True
        )


async def signal_admitted(gateway: TemporalGateway, job_id: str) -> None:
    """Wake the queued job's workflow: it was admitted. Logged, never raised: the admission is
    stored, and the workflow asks again on its own at its next recheck."""
    try:
        client = await gateway.client()
        handle = client.get_workflow_handle(workflow_id_for(job_id))
        await handle.signal(ADMITTED_SIGNAL, rpc_timeout=gateway.rpc_timeout)
    except Exception:
        logger.warning(
            "could not signal %s to the workflow of %s", ADMITTED_SIGNAL, job_id, exc_info=True
        )


async def signal_preempt(gateway: TemporalGateway, job_id: str, by: str) -> None:
    """Tell the running job's workflow to give way to `by`. Logged, never raised: the choice is
    stored (`jobs.preempted_by`), and a later pass that still needs the room chooses again."""
    try:
        client = await gateway.client()
        handle = client.get_workflow_handle(workflow_id_for(job_id))
        await handle.signal(PREEMPT_SIGNAL, Preempt(by=by), rpc_timeout=gateway.rpc_timeout)
    except Exception:
        logger.warning(
            "could not signal %s to the workflow of %s", PREEMPT_SIGNAL, job_id, exc_info=True
        )


async def wake(gateway: TemporalGateway, admitted: list[str], preempted: list[Preemption]) -> None:
    """Signal what an admission pass decided: the admitted start, the preempted give way."""
    await asyncio.gather(
        *(signal_admitted(gateway, job_id) for job_id in admitted),
        *(signal_preempt(gateway, p.victim, p.preemptor) for p in preempted),
    )
