"""Database migrations (Alembic), configured in code so they run from any working directory.

The API upgrades to head at start-up. By hand: `python -m trainyard.migrations upgrade head`,
or `python -m trainyard.migrations revision --autogenerate -m "..."` after changing a model.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config without an alembic.ini; `connection` lets env.py reuse ours."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (a fresh database gets every table)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
