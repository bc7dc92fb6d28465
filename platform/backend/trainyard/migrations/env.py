"""Alembic environment: reuse the caller's connection (the API at start-up), else connect
to TRAINYARD_DATABASE_URL with the async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

import trainyard.admission.models
import trainyard.auth.models
import trainyard.auth.web_sessions
import trainyard.chat.models
import trainyard.datasets.models
import trainyard.jobs.models  # noqa: F401  (registers the tables on Base.metadata)
from trainyard.core.db import Base, create_engine
from trainyard.core.settings import BackendSettings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(BackendSettings().database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=BackendSettings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    shared = context.config.attributes.get("connection")
    if shared is not None:
        _run(shared)
    else:
        asyncio.run(_run_with_own_engine())
