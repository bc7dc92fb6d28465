"""Migration 0006 on both databases: rows stored before projects existed move into the default
project, and each owner they had becomes a user who administers it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.core.db import create_engine
from trainyard.migrations import alembic_config

from ..conftest import postgres_admin


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        yield engine
        await engine.dispose()
        return
    name = f"trainyard_migration_{uuid.uuid4().hex[:12]}"
    admin = await postgres_admin()
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        yield engine
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _to(revision: str) -> object:
    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return upgrade


_OLD_ROWS = [
    "INSERT INTO datasets (id, owner, name, uri, format, status, created_at) VALUES "
    "('ds_1', 'local', 'shapes', 'file:///d/shapes', 'yolo', 'valid', '2026-01-01')",
    "INSERT INTO datasets (id, owner, name, uri, format, status, created_at) VALUES "
    "('ds_2', 'alice', 'shapes', 'file:///d/alice', 'yolo', 'valid', '2026-01-02')",
    "INSERT INTO jobs (id, owner, framework, model, dataset, dataset_uri, task, epochs, imgsz,"
    " batch, gpus, hyperparameters, state, attempt, last_seq, cancel_requested, created_at,"
    " updated_at) VALUES ('job_1', 'local', 'ultralytics', 'yolo11n.yaml', 'shapes', 'file:///d',"
    " 'detect', 1, 64, 4, 0, '{}', 'SUCCEEDED', 1, 3, false, '2026-01-01', '2026-01-01')",
    "INSERT INTO chat_conversations (id, owner, title, created_at, updated_at) VALUES "
    "('conv_1', 'alice', 'hi', '2026-01-01', '2026-01-01')",
]


async def test_old_rows_land_in_the_default_project_administered_by_their_owners(
    empty_engine: AsyncEngine,
) -> None:
    async with empty_engine.begin() as connection:
        await connection.run_sync(_to("0005"))  # type: ignore[arg-type]
    async with empty_engine.begin() as connection:
        for row in _OLD_ROWS:
            await connection.execute(text(row))
    async with empty_engine.begin() as connection:
        await connection.run_sync(_to("head"))  # type: ignore[arg-type]

    async with empty_engine.connect() as connection:
        projects = {
            table: (await connection.execute(text(f"SELECT DISTINCT project_id FROM {table}")))
            .scalars()
            .all()
            for table in ("jobs", "datasets", "chat_conversations")
        }
        users = (
            await connection.execute(
                text("SELECT id, issuer, platform_admin FROM users ORDER BY id")
            )
        ).all()
        names = (await connection.execute(text("SELECT id, name FROM datasets ORDER BY id"))).all()
        roles = (
            await connection.execute(
                text("SELECT user_id, project_id, role FROM memberships ORDER BY user_id")
            )
        ).all()

    assert projects == {
        "jobs": ["default"],
        "datasets": ["default"],
        "chat_conversations": ["default"],
    }
    assert [(u[0], u[1], bool(u[2])) for u in users] == [
        ("alice", "local", True),
        ("local", "local", True),
    ]
    # Both owners had a "shapes": the older keeps the name, the other is renamed, none lost.
    assert [tuple(n) for n in names] == [("ds_1", "shapes"), ("ds_2", "shapes-alice")]
    assert [tuple(r) for r in roles] == [
        ("alice", "default", "admin"),
        ("local", "default", "admin"),
    ]
