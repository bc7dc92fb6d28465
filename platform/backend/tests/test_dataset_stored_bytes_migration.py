"""Migration 0008 on both databases: datasets gain `stored_bytes` (NULL for the rows already
there), and it goes back down cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.migrations import alembic_config

from .auth.test_migration_into_projects import empty_engine  # noqa: F401  (the fixture)


def _to(revision: str) -> object:
    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return upgrade


def _down_to(revision: str) -> object:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    return downgrade


def _columns(connection: Connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("datasets")}


async def test_datasets_gain_stored_bytes_null_for_existing_rows_and_lose_it_going_down(
    empty_engine: AsyncEngine,  # noqa: F811
) -> None:
    async with empty_engine.begin() as connection:
        await connection.run_sync(_to("0007"))  # type: ignore[arg-type]
        await connection.execute(
            text(
                "INSERT INTO datasets (id, project_id, owner, name, uri, format, status, "
                "created_at) VALUES ('ds_1', 'default', 'local', 'shapes', "
                "'file:///d/shapes', 'yolo', 'valid', '2026-01-01')"
            )
        )
    async with empty_engine.begin() as connection:
        await connection.run_sync(_to("0008"))  # type: ignore[arg-type]
        stored = (await connection.execute(text("SELECT stored_bytes FROM datasets"))).all()
        await connection.execute(
            text("UPDATE datasets SET stored_bytes = :n"), {"n": 60 * 1024**3}
        )  # past 32 bits: a quota of tens of GiB must fit
        big = (await connection.execute(text("SELECT stored_bytes FROM datasets"))).scalar_one()

    assert stored == [(None,)]
    assert big == 60 * 1024**3

    async with empty_engine.begin() as connection:
        await connection.run_sync(_down_to("0007"))  # type: ignore[arg-type]
        assert "stored_bytes" not in await connection.run_sync(_columns)
