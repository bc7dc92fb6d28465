"""Heartbeat ingest with group commit: concurrent heartbeats of any jobs share one transaction.

A heartbeat must be durable before it is acknowledged, and a transaction per heartbeat costs
several database round trips plus the ORM around them. Here heartbeats queue up while the
previous batch commits (no timer: an idle server stores a lone heartbeat at once) and the next
batch is stored with a fixed number of driver-level statements whatever its size (ingest_sql):

    read every job of the batch (SQLite: under its write lock)
    decide each heartbeat in arrival order (stale attempt 403, terminal 409, unknown 404)
    update each job once and insert every event (PostgreSQL: one statement, and only for
    jobs still as read; the heartbeats of a job another writer changed are decided again)
    (SQLite: all of it one call in aiosqlite's thread)

then the events are published in seq order and only then is each request answered. The rules
are those of jobs.events (next seq under the job's row lock, forward-only state, progress
never backwards); a refused heartbeat changes nothing. If the batch's transaction fails, each
heartbeat is retried in a transaction of its own, so one bad heartbeat cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link

from trainyard.callbacks.ingest_sql import ConnectionLease, JobUpdate, LockedJob
from trainyard.callbacks.schemas import Heartbeat
from trainyard.callbacks.service import check_reporter, heartbeat_data, merged_progress
from trainyard.callbacks.tokens import TokenClaims
from trainyard.core.db import Database, utcnow
from trainyard.core.errors import TrainyardError
from trainyard.jobs.errors import JobNotFound
from trainyard.jobs.events import moves_to, state_event
from trainyard.jobs.schemas import EventRead
from trainyard_workflows.job_states import JobState

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


@dataclass
class _Pending:
    claims: TokenClaims
    beat: Heartbeat
    answer: asyncio.Future[dict[str, Any]]
    # The request's trace context: the batch's span joins a sampled one (`_batch_span`).
    context: Context = field(default_factory=otel_context.get_current)


@dataclass
class _JobRow:
    """A job as the round read it, changed in memory (a `jobs.events.JobView`)."""

    id: str
    state: JobState
    attempt: int
    last_seq: int
    progress: dict[str, Any] | None
    changed: bool = False
    read_seq: int = 0
    held_externally: bool = False


@dataclass
class _Batch:
    """What one transaction stores: rows to write, events to insert, answers to give."""

    now: datetime
    rows: dict[str, _JobRow]
    events: list[dict[str, Any]] = field(default_factory=list)

    def add_event(self, job_id: str, row: _JobRow, type_: str, message: str, data: Any) -> int:
        row.last_seq += 1
        row.changed = True
        self.events.append(
            {
                "job_id": job_id,
                "seq": row.last_seq,
                "type": type_,
                "source": "trainer",
                "message": message,
                "data": data,
                "created_at": self.now,
            }
        )
        return len(self.events) - 1


class HeartbeatIngest:
    """The group-committing heartbeat writer of one Database (one per process and database)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None

    async def heartbeat(self, claims: TokenClaims, beat: Heartbeat) -> dict[str, Any]:
        """Store the heartbeat (and RUNNING on the first one); its event as the API shows it."""
        pending = _Pending(claims, beat, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        # Shielded: a request cancelled while waiting must not cancel the batch's answer to it.
        return await asyncio.shield(pending.answer)

    async def _drain(self) -> None:
        lease = ConnectionLease(self._db.engine)
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                with _batch_span(batch):
                    await self._store_or_answer(batch, lease)
        finally:
            await lease.release()

    async def _store_or_answer(self, batch: list[_Pending], lease: ConnectionLease) -> None:
        try:
            await self._store(batch, lease)
        except Exception as exc:
            if len(batch) == 1:
                _answer(batch[0], exc)
                return
            logger.warning("storing %d heartbeats together failed; one by one", len(batch))
            for pending in batch:
                try:
                    await self._store([pending], lease)
                except Exception as single:
                    _answer(pending, single)
        except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
            for pending in [*batch, *self._queue]:
                _answer(pending, exc)
            self._queue = []
            raise

    async def _store(self, batch: list[_Pending], lease: ConnectionLease) -> None:
        remaining = batch
        for _ in range(_MAX_ROUNDS):
            remaining = await self._store_round(remaining, lease)
            if not remaining:
                return
        raise IngestBusy(
            f"{len(remaining)} heartbeat(s) lost the race for their job {_MAX_ROUNDS} times"
        )

    async def _store_round(self, batch: list[_Pending], lease: ConnectionLease) -> list[_Pending]:
        """Decide and store `batch`; the heartbeats of jobs another writer changed meanwhile
        (decided on a stale row, so nothing of theirs was written) are returned to go again."""
        ids = sorted({pending.claims.job_id for pending in batch})
        decision = _Decision(batch)
        stored = await lease.run(ids, decision)
        decided, indexes = decision.made()
        # Stored: publish in seq order (the order they were added), then answer.
        payloads = {
            index: _payload(event)
            for index, event in enumerate(decided.events)
            if event["job_id"] in stored
        }
        await self._db.publish([(payload["job_id"], payload) for payload in payloads.values()])
        again: list[_Pending] = []
        for pending, index in zip(batch, indexes, strict=True):
            if not isinstance(index, int):
                _answer(pending, index)
            elif index in payloads:
                _answer(pending, payloads[index])
            else:
                again.append(pending)
        return again


class IngestBusy(TrainyardError):
    """Other writers kept changing the job while its heartbeat was being stored."""

    status_code = 503
    code = "busy"
    headers = {"Retry-After": "1"}  # noqa: RUF012  (never mutated)


class _Decision:
    """A round's decisions on its heartbeats, made once the round has read their jobs.

    Pure computation on the batch's own objects: on SQLite it runs on aiosqlite's thread,
    inside the round's transaction (ingest_sql).
    """

    def __init__(self, batch: list[_Pending]) -> None:
        self._pending = batch
        self._made: tuple[_Batch, list[int | Exception]] | None = None

    def __call__(self, jobs: list[LockedJob]) -> tuple[list[JobUpdate], list[dict[str, Any]]]:
        decided = _Batch(
            now=utcnow(),
            rows={
                job.id: _JobRow(
                    job.id,
                    JobState(job.state),
                    job.attempt,
                    job.last_seq,
                    job.progress,
                    read_seq=job.last_seq,
                    held_externally=job.external_queue is not None,
                )
                for job in jobs
            },
        )
        indexes = [_decide(decided, pending) for pending in self._pending]
        self._made = decided, indexes
        updates = [
            JobUpdate(
                job_id, row.state.value, row.last_seq, row.progress, decided.now, row.read_seq
            )
            for job_id, row in decided.rows.items()
            if row.changed
        ]
        return updates, decided.events

    def made(self) -> tuple[_Batch, list[int | Exception]]:
        """The batch as decided and, per heartbeat, its event's index or its refusal."""
        if self._made is None:
            raise RuntimeError("the round ended without deciding")
        return self._made


def _decide(batch: _Batch, pending: _Pending) -> int | Exception:
    """The heartbeat applied to its job's row in memory: its event's index, or the refusal."""
    claims, beat = pending.claims, pending.beat
    row = batch.rows.get(claims.job_id)
    if row is None:
        return JobNotFound(claims.job_id)
    try:
        # The same rules as every other callback and transition (decision 007).
        check_reporter(row, claims)
        starts_running = moves_to(row, JobState.RUNNING)
    except TrainyardError as refusal:
        return refusal
    row.progress = merged_progress(row.progress, beat)
    if starts_running:
        previous, row.state = row.state, JobState.RUNNING
        message, data = state_event(previous, JobState.RUNNING, None)
        batch.add_event(claims.job_id, row, "state", message, data)
    return batch.add_event(
        claims.job_id,
        row,
        "heartbeat",
        f"epoch {beat.epoch}/{beat.epochs}",
        heartbeat_data(beat),
    )


def _batch_span(batch: list[_Pending]) -> AbstractContextManager[object]:
    """The span of one batch: a child of its first sampled heartbeat (heartbeats are sampled,
    observability.heartbeat_sampling), linked to the other sampled ones; none when none is."""
    spans = [trace.get_current_span(pending.context).get_span_context() for pending in batch]
    sampled = [index for index, span in enumerate(spans) if span.trace_flags.sampled]
    if not sampled:
        return nullcontext()
    return _tracer.start_as_current_span(
        "ingest heartbeats",
        context=batch[sampled[0]].context,
        links=[Link(spans[index]) for index in sampled[1:]],
        attributes={"trainyard.heartbeats": len(batch)},
    )


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    return EventRead.model_validate(event).model_dump(mode="json")


def _answer(pending: _Pending, outcome: dict[str, Any] | BaseException) -> None:
    if pending.answer.done():  # its request was cancelled
        return
    if isinstance(outcome, BaseException):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)


# Rounds one batch may take when other writers keep changing its jobs (PostgreSQL's
# optimistic rounds; on SQLite the first round always stores everything).
_MAX_ROUNDS = 5

_INGESTS: WeakKeyDictionary[Database, HeartbeatIngest] = WeakKeyDictionary()


def ingest_for(db: Database) -> HeartbeatIngest:
    """The heartbeat writer of `db`, made on first use."""
    ingest = _INGESTS.get(db)
    if ingest is None:
        ingest = _INGESTS[db] = HeartbeatIngest(db)
    return ingest
