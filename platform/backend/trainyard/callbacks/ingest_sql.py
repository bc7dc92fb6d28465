"""The heartbeat ingest's database rounds, spoken to the database driver directly.

One round reads the batch's jobs, lets the ingest decide (a plain function of the rows read:
the new rows and the events), then writes the rows and inserts the events. Through SQLAlchemy
each statement costs an execution context and, on SQLite, three or four hops to aiosqlite's
thread; that fixed cost was most of a heartbeat's server CPU. Here each statement is one driver
call. Values are encoded and decoded by the columns' own SQLAlchemy types (bind/result
processors of the dialect), so what is stored is exactly what the ORM writes and reads
elsewhere.

The dialects differ in how a round keeps other writers out (decision 007):
- SQLite: one transaction, BEGIN IMMEDIATE taking the write lock before the read, and the whole
  round (begin, read, decide, update, insert, commit) is ONE call in aiosqlite's thread: each
  hop there and back costs the event loop a future, a cross-thread wake-up and a context
  switch, and five of them were a third of a lone heartbeat's server CPU.
- PostgreSQL: no explicit transaction. The read is a plain SELECT; the write is ONE statement
  that updates each job only if its `last_seq` is still the one read (optimistic concurrency)
  and inserts the events of exactly the jobs it updated (two round trips instead of five).
  Jobs another writer changed in between are reported back; the ingest decides them again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import DateTime, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeEngine

from trainyard.jobs.models import Job, JobEvent

_JOBS: Table = Job.metadata.tables[Job.__tablename__]
_EVENTS: Table = JobEvent.metadata.tables[JobEvent.__tablename__]
LOCKED_COLUMNS = ("id", "attempt", "state", "last_seq", "progress", "external_queue")
UPDATED_COLUMNS = ("state", "last_seq", "progress", "last_heartbeat_at", "updated_at")
EVENT_COLUMNS = ("job_id", "seq", "type", "source", "message", "data", "created_at")


@dataclass(frozen=True)
class LockedJob:
    id: str
    attempt: int
    state: str
    last_seq: int
    progress: dict[str, Any] | None
    external_queue: dict[str, Any] | None


@dataclass(frozen=True)
class JobUpdate:
    id: str
    state: str
    last_seq: int
    progress: dict[str, Any] | None
    at: datetime
    # The last_seq this round read: the update applies only if the row still has it.
    read_seq: int


# What the ingest makes of the rows read: the jobs' new rows and the events to insert. Called
# once per round, possibly on another thread (SQLite's): it must only compute.
Decide = Callable[[list[LockedJob]], tuple[Sequence[JobUpdate], Sequence[dict[str, Any]]]]


class IngestRound(Protocol):
    async def run(self, ids: Sequence[str], decide: Decide) -> set[str]:
        """Read the jobs `ids`, decide, write the new rows and insert the events; the ids of
        the jobs stored (the others changed after the read: none of their rows or events
        were written)."""
        ...


Processor = Callable[[Any], Any]


class _Columns:
    """Values of some columns, in order, each through its column's processor (columns whose
    type needs none, ints and strings mostly, are passed as they are)."""

    def __init__(self, processors: Sequence[Processor | None]) -> None:
        self._active = [(index, p) for index, p in enumerate(processors) if p is not None]

    def __call__(self, values: list[Any]) -> list[Any]:
        for index, process in self._active:
            values[index] = process(values[index])
        return values


class _LastTimestamp:
    """A timestamp's bind processor remembering its last value: a round stores one `now` in
    every row it writes (twice in each job), encoded once this way. Only for datetimes:
    immutable, so the same object always has the same encoding."""

    def __init__(self, process: Processor) -> None:
        self._process = process
        self._last: tuple[Any, Any] = (None, process(None))

    def __call__(self, value: Any) -> Any:
        last_value, last_encoded = self._last  # one tuple: safe across aiosqlite's threads
        if value is last_value:
            return last_encoded
        encoded = self._process(value)
        self._last = (value, encoded)
        return encoded


def _is_timestamp(column_type: TypeEngine[Any]) -> bool:
    implementation = getattr(column_type, "impl", column_type)  # a TypeDecorator's own type
    return isinstance(implementation, DateTime)


class _Codec:
    """The columns' SQLAlchemy types, as bind/result processors of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        def bind(table: Table, name: str) -> Processor | None:
            column_type = table.c[name].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None and _is_timestamp(column_type):
                return _LastTimestamp(processor)
            return processor

        def result(table: Table, name: str) -> Processor | None:
            return table.c[name].type.dialect_impl(dialect).result_processor(dialect, None)

        self._update = _Columns([bind(_JOBS, name) for name in (*UPDATED_COLUMNS, "id")])
        self._event = _Columns([bind(_EVENTS, name) for name in EVENT_COLUMNS])
        self._locked = _Columns([result(_JOBS, name) for name in LOCKED_COLUMNS])
        self.postgres_store_sql = (
            _postgres_store_sql(dialect) if dialect.name == "postgresql" else ""
        )

    def update_row(self, update: JobUpdate) -> list[Any]:
        return self._update(
            [update.state, update.last_seq, update.progress, update.at, update.at, update.id]
        )

    def event_row(self, event: dict[str, Any]) -> list[Any]:
        return self._event([event[name] for name in EVENT_COLUMNS])

    def locked(self, row: Sequence[Any]) -> LockedJob:
        return LockedJob(*self._locked(list(row)))


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


class SQLiteRound:
    """The round as one function run on aiosqlite's thread, on its sqlite3 connection.

    aiosqlite runs every call as a function queued to its thread (`Connection._execute`, the
    one path behind all its public methods); it has no public call for several statements in
    one hop, so this queues its own function the same way (a private API: pinned and checked,
    callbacks/aiosqlite_internals.py). The round's transaction holds
    SQLite's write lock from before the read: nothing can change in between.
    """

    _UPDATE = _update_sql(["?"] * (len(UPDATED_COLUMNS) + 1))
    _INSERT = _insert_sql(["?"] * len(EVENT_COLUMNS))

    def __init__(self, driver: Any, codec: _Codec) -> None:
        self._driver = driver
        self._codec = codec

    async def run(self, ids: Sequence[str], decide: Decide) -> set[str]:
        stored: set[str] = await self._driver._execute(self._in_thread, list(ids), decide)
        return stored

    def _in_thread(self, ids: list[str], decide: Decide) -> set[str]:
        connection: sqlite3.Connection = self._driver._conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            marks = ", ".join("?" * len(ids))
            rows = connection.execute(
                f"{_SELECT_LOCKED} WHERE id IN ({marks}) ORDER BY id", ids
            ).fetchall()
            updates, events = decide([self._codec.locked(row) for row in rows])
            if updates:
                connection.executemany(self._UPDATE, [self._codec.update_row(u) for u in updates])
                connection.executemany(self._INSERT, [self._codec.event_row(e) for e in events])
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return {update.id for update in updates}


def _postgres_store_sql(dialect: Dialect) -> str:
    """Update the jobs whose last_seq is still the one read and insert the events of exactly
    those jobs, in ONE statement; it answers the ids of the jobs it updated. Each column's
    values arrive as one array, unnested into rows server-side.

    Under READ COMMITTED an UPDATE that meets a row another transaction changed re-checks its
    WHERE on the new version, so a concurrent writer makes the guard fail, never slip past.
    """

    def array(table: Table, name: str, n: int) -> str:
        return f"${n}::{table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)}[]"

    update_columns = (*UPDATED_COLUMNS, "id")
    update_arrays = [array(_JOBS, name, n) for n, name in enumerate(update_columns, start=1)]
    update_arrays.append(f"${len(update_columns) + 1}::integer[]")  # the last_seq read
    event_arrays = ", ".join(
        array(_EVENTS, name, n)
        for n, name in enumerate(EVENT_COLUMNS, start=len(update_columns) + 2)
    )
    assignments = ", ".join(f"{name} = new.{name}" for name in UPDATED_COLUMNS)
    return (
        f"WITH updated AS (UPDATE {_JOBS.name} SET {assignments} "
        f"FROM unnest({', '.join(update_arrays)}) "
        f"AS new({', '.join(update_columns)}, read_seq) "
        f"WHERE {_JOBS.name}.id = new.id AND {_JOBS.name}.last_seq = new.read_seq "
        f"RETURNING {_JOBS.name}.id), "
        f"inserted AS (INSERT INTO {_EVENTS.name} ({', '.join(EVENT_COLUMNS)}) "
        f"SELECT * FROM unnest({event_arrays}) AS event({', '.join(EVENT_COLUMNS)}) "
        f"WHERE event.job_id IN (SELECT id FROM updated)) "
        f"SELECT id FROM updated"
    )


class PostgresRound:
    """asyncpg outside a transaction: a read, then one guarded statement (see the module)."""

    _READ = f"{_SELECT_LOCKED} WHERE id = ANY($1::varchar[])"

    def __init__(self, driver: Any, codec: _Codec) -> None:
        self._driver = driver
        self._codec = codec

    async def run(self, ids: Sequence[str], decide: Decide) -> set[str]:
        updates, events = decide(await self.read_jobs(ids))
        return await self.store(updates, events) if updates else set()

    async def read_jobs(self, ids: Sequence[str]) -> list[LockedJob]:
        rows = await self._driver.fetch(self._READ, list(ids))
        return [self._codec.locked(tuple(row)) for row in rows]

    async def store(
        self, updates: Sequence[JobUpdate], events: Sequence[dict[str, Any]]
    ) -> set[str]:
        """The guarded write: the ids of the jobs whose last_seq was still the one read."""
        update_rows = [(*self._codec.update_row(u), u.read_seq) for u in updates]
        event_rows = [self._codec.event_row(e) for e in events]
        columns = [
            *_columns_of(update_rows, len(UPDATED_COLUMNS) + 2),
            *_columns_of(event_rows, len(EVENT_COLUMNS)),
        ]
        rows = await self._driver.fetch(self._codec.postgres_store_sql, *columns)
        return {row[0] for row in rows}


def _columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column (empty lists when there are no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


_ROUNDS: dict[str, type[SQLiteRound] | type[PostgresRound]] = {
    "sqlite": SQLiteRound,
    "postgresql": PostgresRound,
}
_CODECS: dict[str, _Codec] = {}


class ConnectionLease:
    """The ingest's connection while batches keep coming.

    On PostgreSQL one checkout serves every back-to-back batch: the pool's pre-ping and its
    reset on return are two round trips a batch would otherwise pay (the pool has many
    connections, so holding one costs nobody a wait). SQLite has one connection in all, so it
    goes back after every batch and other writers get their turn between batches.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        dialect = engine.dialect
        round_type = _ROUNDS.get(dialect.name)
        if round_type is None:
            raise RuntimeError(f"no heartbeat ingest for the {dialect.name} dialect")
        self._round_type = round_type
        codec = _CODECS.get(dialect.name)
        if codec is None:
            codec = _CODECS[dialect.name] = _Codec(dialect)
        self._codec = codec
        self._engine = engine
        self._hold = dialect.name == "postgresql"
        self._connection: AsyncConnection | None = None

    async def run(self, ids: Sequence[str], decide: Decide) -> set[str]:
        """One round (IngestRound.run) on the leased connection."""
        async with self.round() as round_:
            return await round_.run(ids, decide)

    @asynccontextmanager
    async def round(self) -> AsyncIterator[IngestRound]:
        """The round of the leased connection. A connection whose round failed goes back to
        the pool (whose reset rolls back a transaction still open, or drops the connection)."""
        connection, self._connection = self._connection, None
        if connection is None:
            connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection  # aiosqlite.Connection or asyncpg.Connection
            yield self._round_type(driver, self._codec)
        except BaseException:
            await connection.close()
            raise
        if self._hold:
            self._connection = connection
        else:
            await connection.close()

    async def release(self) -> None:
        """Give a held connection back to the pool (when no batch is waiting)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
