"""Database plumbing: engine, the unit of work per request, and portable column types.

The unit of work (`Database.session`) owns commit and rollback: handlers and services never
commit. Work that must only happen once the data is durable (publishing events on the bus,
signalling Temporal) is queued on the session and run right after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from opentelemetry import trace
from sqlalchemy import JSON, DateTime, MetaData, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from trainyard.core.bus import EventBus
from trainyard.observability.metrics import BUS_PUBLISH_FAILURES

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

AfterCommit = Callable[[], Awaitable[None]]
# Sees every committed event (job id, payload) once, after the bus (observability.job_lifecycle).
CommittedObserver = Callable[[list[tuple[str, dict[str, Any]]]], Awaitable[None]]

_OUTBOX = "trainyard.outbox"
_AFTER_COMMIT = "trainyard.after_commit"


class Base(DeclarativeBase):
    # Named constraints keep migrations portable (SQLite batch mode needs names to alter them).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite drops the offset on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB where the database has it, plain JSON elsewhere.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; busy_timeout: writers queue instead of failing.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        # The pool's default reset is a rollback on every return, a hop to aiosqlite's thread
        # each time (a sixth of a heartbeat batch's cost); sqlite3 knows whether a transaction
        # is open, so only a connection returned inside one is rolled back.
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes fails with SQLITE_BUSY (no wait)
        # when another writer committed in between; taking the write lock up front makes
        # concurrent requests queue on busy_timeout instead. This stands in for the row locks
        # (SELECT ... FOR UPDATE) that SQLite ignores.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


# JSON columns go through pydantic-core's encoder and parser (Rust): ~5x faster than the json
# module's for the progress and event objects every heartbeat stores, and the same JSON.
# Floats are written shortest-exact (1e-9, not 1e-09) and text as UTF-8; NaN and Infinity
# never get here (trainyard_workflows.json_values turns them into null).
_JSON_CODEC: dict[str, Any] = {
    "json_serializer": _json_text,
    "json_deserializer": pydantic_core.from_json,
}


def create_engine(database_url: str, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        # One connection: every transaction takes SQLite's write lock (BEGIN IMMEDIATE, see
        # _on_begin), so a second connection could only wait in SQLite's busy handler, which
        # polls with sleeps of up to 100 ms. Waiting for the pooled connection instead queues
        # requests in the event loop, in order, with no sleeps (ingest throughput x2-3 and the
        # tail latency of concurrent callbacks down from ~100 ms to a few ms). busy_timeout
        # still covers other processes (the CLI, migrations). No pre-ping: a local file's
        # connection is not dropped under us, and the ping was a round trip per transaction.
        engine = create_async_engine(
            database_url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,  # see _on_reset
            **_JSON_CODEC,
        )
        _configure_sqlite(engine)
        return engine
    # PostgreSQL: row locks (SELECT ... FOR UPDATE in jobs.events.lock_job) serialise writers
    # of one job; READ COMMITTED (the default) is what those locks need. Connections are
    # recycled hourly so a proxy or failover that silently drops idle ones is survived.
    # LIFO: a request takes the connection used last, whose prepared statements and type
    # codecs are warm. FIFO rotated through the whole pool: after a burst had opened every
    # connection (1000 streams connecting), each of the next heartbeats landed on a
    # connection that had never run the ingest's statements and prepared them first, 20-30 ms
    # of relay latency for ~10 heartbeats (bench/live_paths.py relay).
    return create_async_engine(
        database_url,
        pool_pre_ping=True,
        pool_use_lifo=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=3600,
        pool_timeout=30,
        **_JSON_CODEC,
    )


def queue_event(session: AsyncSession, job_id: str, payload: dict[str, Any]) -> None:
    """Publish `payload` on the bus once (and only if) the session's transaction commits."""
    session.info.setdefault(_OUTBOX, []).append((job_id, payload))


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once the session's transaction commits; its failure is logged, not raised."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


def _publish_span(events: list[tuple[str, dict[str, Any]]]) -> AbstractContextManager[object]:
    """One span per publish of committed events, in the trace that made them; none for a unit
    of work that made none, nor outside a traced one (an untraced heartbeat's ingest, a
    background loop: a one-span trace each that nobody reads)."""
    if not events or not trace.get_current_span().is_recording():
        return nullcontext()
    return _tracer.start_as_current_span(
        "bus publish", attributes={"trainyard.events": len(events)}
    )


class Database:
    """The engine, a session factory and the bus that committed events go to."""

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._observers: list[CommittedObserver] = []
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error, then the after-commit work."""
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            outbox: list[tuple[str, dict[str, Any]]] = session.info.pop(_OUTBOX, [])
            actions: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
        await self.publish(outbox)
        for action in actions:
            try:
                await action()
            except Exception:
                logger.exception("after-commit action failed (the data is committed)")

    async def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish committed events (job id, payload) in order; a failure is logged, not
        raised: the event is stored, and streams fill the gap from the database."""
        with _publish_span(events):
            for job_id, payload in events:
                try:
                    await self.bus.publish(job_id, payload)
                except Exception:
                    BUS_PUBLISH_FAILURES.inc()
                    logger.exception(
                        "publishing event %s of job %s failed", payload.get("seq"), job_id
                    )
        if not events:
            return
        for observe in self._observers:
            try:
                await observe(events)
            except Exception:  # a metric or a wake-up is never worth failing a committed request
                logger.exception("observing committed events failed")

    def observe(self, observer: CommittedObserver) -> None:
        """Show `observer` every committed event from now on (after the bus has them)."""
        self._observers.append(observer)

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
