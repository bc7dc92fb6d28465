"""Tables of the jobs domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.core.db import Base, PortableJSON, UTCDateTime, utcnow

# The largest value of an INTEGER column (int4 on PostgreSQL): the bound of every parameter
# compared with one (an event's `seq`, a page's `offset`), so a larger one is a 422, not a
# database error.
MAX_INT_COLUMN = 2**31 - 1


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The project it belongs to (who may see it), and the user who made it.
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    owner: Mapped[str] = mapped_column(String(128), index=True)
    framework: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(256))
    # What the client asked for (a dataset name or URI), and where it resolved to.
    dataset: Mapped[str] = mapped_column(String(1024))
    dataset_uri: Mapped[str] = mapped_column(String(2048))
    task: Mapped[str] = mapped_column(String(32))
    epochs: Mapped[int] = mapped_column(Integer)
    imgsz: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # 0 until the worker starts the first attempt.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    # The seq of the job's newest event; the next event gets last_seq + 1.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    progress: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Admission (trainyard/admission): higher goes first; set when the job may take its GPUs or
    # CPU slot, and from then until it ends it holds them.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Told to give way to this job (preemption); cleared when it is back in the queue.
    preempted_by: Mapped[str | None] = mapped_column(String(64), default=None)
    # Where Kueue holds the job while it does (its place, GPUs ahead, Kueue's reason: an
    # ExternalQueuePlace), as the worker's watch last reported; None otherwise.
    external_queue: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    # Where the run is tracked: {"mlflow_run_id", "mlflow_run_url", "model_version", ...}.
    tracking: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    # The current attempt's output (trainyard_workflows.attempt_outputs.AttemptOutput): where
    # its trainer may report artifacts and checkpoints. Set by the worker when it starts the
    # attempt; None before, and for attempts started by a worker older than this column.
    attempt_output: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    # When its workflow was started; null until then (the start follows the commit: the
    # sweep in jobs.workflow_starter starts the workflow of a job whose start was lost).
    workflow_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The job's trace (32 hex digits), started by its submit request; null for jobs older than
    # tracing. `traceparent`: that request span's W3C context, so a workflow started later (the
    # sweep) continues the same trace.
    trace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def held_externally(self) -> bool:
        """Kueue holds it (QUEUED before its attempt's trainer may start, not preempted)."""
        return self.external_queue is not None


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    # Who caused it: "api" (a user request), "worker" (internal API) or "trainer" (callbacks).
    source: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
