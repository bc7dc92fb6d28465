"""The PostgreSQL connection pool hands out the connection used last (warm statements)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from trainyard.core.db import create_engine


async def _backend_pid(connection: AsyncConnection) -> int:
    pid: int = (await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
    return pid


async def test_a_request_gets_the_connection_returned_last_not_the_longest_idle(
    postgres_database: str,
) -> None:
    engine = create_engine(postgres_database)
    try:
        opened = [await engine.connect() for _ in range(3)]
        pids = [await _backend_pid(connection) for connection in opened]
        for connection in opened:  # returned oldest first: the third is the warmest
            await connection.close()

        async with engine.connect() as connection:
            assert await _backend_pid(connection) == pids[-1]
    finally:
        await engine.dispose()
