"""The part of aiosqlite that is not its public API and that the heartbeat ingest relies on.

On SQLite a whole ingest round (begin, read, decide, update, insert, commit) is one function
queued to aiosqlite's thread through `Connection._execute`, on the thread's `sqlite3`
connection `Connection._conn` (callbacks/ingest_sql.py, decision 007): aiosqlite has no public
call for several statements in one hop. platform/backend/pyproject.toml pins aiosqlite to the
minor version this was written against; `check_aiosqlite_internals()` runs when `trainyard-api`
starts and in tests/test_aiosqlite_internals.py, and names the version and what moved.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from aiosqlite.core import Connection


class AiosqliteInternalsChanged(RuntimeError):
    """The installed aiosqlite no longer has what the SQLite ingest round uses."""


def check_aiosqlite_internals(connection_class: type[Connection] = Connection) -> None:
    """Raise AiosqliteInternalsChanged unless `connection_class` has `_execute(fn, *args,
    **kwargs)` (a coroutine function) and a `_conn` property."""
    problems = []
    execute = getattr(connection_class, "_execute", None)
    if not inspect.iscoroutinefunction(execute):
        problems.append("Connection._execute is missing or no longer a coroutine function")
    else:
        kinds = [p.kind for p in inspect.signature(execute).parameters.values()][1:]
        if kinds[:1] != [inspect.Parameter.POSITIONAL_OR_KEYWORD] or (
            inspect.Parameter.VAR_POSITIONAL not in kinds
        ):
            problems.append("Connection._execute no longer takes (fn, *args, **kwargs)")
    if not isinstance(inspect.getattr_static(connection_class, "_conn", None), property):
        problems.append("Connection._conn (the thread's sqlite3 connection) is missing")
    if problems:
        raise AiosqliteInternalsChanged(
            f"aiosqlite {version('aiosqlite')} changed what the SQLite heartbeat ingest "
            f"(callbacks/ingest_sql.py) relies on: {'; '.join(problems)}. Pin aiosqlite back "
            "(platform/backend/pyproject.toml) or adapt SQLiteRound."
        )
