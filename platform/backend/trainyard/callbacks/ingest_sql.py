"""The heartbeat ingest's transaction, spoken to the database driver directly.

One batch of heartbeats is five statements (begin, lock the jobs, update them, insert the
events, commit). Through SQLAlchemy each costs an execution context and, on SQLite, three or
four hops to aiosqlite's thread; that fixed cost was most of a heartbeat's server CPU. Here
each statement is one driver call. Values are encoded and decoded by the columns' own
SQLAlchemy types (bind/result processors of the dialect), so what is stored is exactly what
the ORM writes and reads elsewhere. The SQL differs per dialect only in placeholders, the id
list and row locking (SQLite has none: BEGIN IMMEDIATE takes its write lock up front).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.jobs.models import Job, JobEvent

_JOBS: Table = Job.metadata.tables[Job.__tablename__]
_EVENTS: Table = JobEvent.metadata.tables[JobEvent.__tablename__]
LOCKED_COLUMNS = ("id", "attempt", "state", "last_seq", "progress")
UPDATED_COLUMNS = ("state", "last_seq", "progress", "last_heartbeat_at", "updated_at")
EVENT_COLUMNS = ("job_id", "seq", "type", "source", "message", "data", "created_at")


@dataclass(frozen=True)
class LockedJob:
    id: str
    attempt: int
    state: str
    last_seq: int
    progress: dict[str, Any] | None


@dataclass(frozen=True)
class JobUpdate:
    id: str
    state: str
    last_seq: int
    progress: dict[str, Any] | None
    at: datetime


class IngestTransaction(Protocol):
    async def lock_jobs(self, ids: Sequence[str]) -> list[LockedJob]: ...
    async def update_jobs(self, updates: Sequence[JobUpdate]) -> None: ...
    async def insert_events(self, events: Sequence[dict[str, Any]]) -> None: ...


Processor = Callable[[Any], Any]


class _Codec:
    """The columns' SQLAlchemy types, as bind/result processors of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        def bind(table: Table, name: str) -> Processor:
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            return processor if processor is not None else _same

        def result(table: Table, name: str) -> Processor:
            processor = table.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
            return processor if processor is not None else _same

        self.update_binds = [bind(_JOBS, name) for name in UPDATED_COLUMNS] + [bind(_JOBS, "id")]
        self.event_binds = [bind(_EVENTS, name) for name in EVENT_COLUMNS]
        self.locked_results = [result(_JOBS, name) for name in LOCKED_COLUMNS]

    def update_row(self, update: JobUpdate) -> tuple[Any, ...]:
        values = (update.state, update.last_seq, update.progress, update.at, update.at, update.id)
        return tuple(
            process(value) for process, value in zip(self.update_binds, values, strict=True)
        )

    def event_row(self, event: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            process(event[name])
            for process, name in zip(self.event_binds, EVENT_COLUMNS, strict=True)
        )

    def locked(self, row: Sequence[Any]) -> LockedJob:
        id_, attempt, state, last_seq, progress = (
            process(value) for process, value in zip(self.locked_results, row, strict=True)
        )
        return LockedJob(id_, attempt, state, last_seq, progress)


def _same(value: Any) -> Any:
    return value


def _update_sql(placeholders: list[str]) -> str:
    assignments = ", ".join(
        f"{name} = {placeholder}"
        for name, placeholder in zip(UPDATED_COLUMNS, placeholders, strict=False)
    )
    return f"UPDATE {_JOBS.name} SET {assignments} WHERE id = {placeholders[-1]}"


def _insert_sql(placeholders: list[str]) -> str:
    return (
        f"INSERT INTO {_EVENTS.name} ({', '.join(EVENT_COLUMNS)}) "
        f"VALUES ({', '.join(placeholders)})"
    )


_SELECT_LOCKED = f"SELECT {', '.join(LOCKED_COLUMNS)} FROM {_JOBS.name}"


class _SQLiteTransaction:
    """aiosqlite: qmark placeholders; every call is one hop to the connection's thread."""

    _UPDATE = _update_sql(["?"] * (len(UPDATED_COLUMNS) + 1))
    _INSERT = _insert_sql(["?"] * len(EVENT_COLUMNS))

    def __init__(self, driver: Any, codec: _Codec) -> None:
        self._driver = driver
        self._codec = codec

    async def lock_jobs(self, ids: Sequence[str]) -> list[LockedJob]:
        marks = ", ".join("?" * len(ids))
        rows = await self._driver.execute_fetchall(
            f"{_SELECT_LOCKED} WHERE id IN ({marks}) ORDER BY id", list(ids)
        )
        return [self._codec.locked(row) for row in rows]

    async def update_jobs(self, updates: Sequence[JobUpdate]) -> None:
        await self._driver.executemany(self._UPDATE, [self._codec.update_row(u) for u in updates])

    async def insert_events(self, events: Sequence[dict[str, Any]]) -> None:
        await self._driver.executemany(self._INSERT, [self._codec.event_row(e) for e in events])


class _PostgresTransaction:
    """asyncpg: $n placeholders; executemany is one pipelined round trip."""

    _UPDATE = _update_sql([f"${n}" for n in range(1, len(UPDATED_COLUMNS) + 2)])
    _INSERT = _insert_sql([f"${n}" for n in range(1, len(EVENT_COLUMNS) + 1)])
    _LOCK = f"{_SELECT_LOCKED} WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE"

    def __init__(self, driver: Any, codec: _Codec) -> None:
        self._driver = driver
        self._codec = codec

    async def lock_jobs(self, ids: Sequence[str]) -> list[LockedJob]:
        rows = await self._driver.fetch(self._LOCK, list(ids))
        return [self._codec.locked(tuple(row)) for row in rows]

    async def update_jobs(self, updates: Sequence[JobUpdate]) -> None:
        await self._driver.executemany(self._UPDATE, [self._codec.update_row(u) for u in updates])

    async def insert_events(self, events: Sequence[dict[str, Any]]) -> None:
        await self._driver.executemany(self._INSERT, [self._codec.event_row(e) for e in events])


_BEGIN = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN"}
_TRANSACTIONS: dict[str, type[_SQLiteTransaction] | type[_PostgresTransaction]] = {
    "sqlite": _SQLiteTransaction,
    "postgresql": _PostgresTransaction,
}
_CODECS: dict[str, _Codec] = {}


@asynccontextmanager
async def ingest_transaction(engine: AsyncEngine) -> AsyncIterator[IngestTransaction]:
    """A pooled connection in one transaction: committed on exit, rolled back on error."""
    dialect = engine.dialect
    transaction_type = _TRANSACTIONS.get(dialect.name)
    if transaction_type is None:
        raise RuntimeError(f"no heartbeat ingest for the {dialect.name} dialect")
    codec = _CODECS.get(dialect.name)
    if codec is None:
        codec = _CODECS[dialect.name] = _Codec(dialect)
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # aiosqlite.Connection or asyncpg.Connection
        try:
            await driver.execute(_BEGIN[dialect.name])
            yield transaction_type(driver, codec)
            await driver.execute("COMMIT")
        except BaseException:
            # Back to the pool with no transaction open; dropped if even that fails.
            try:
                await driver.execute("ROLLBACK")
            except Exception:
                await connection.invalidate()
            raise
