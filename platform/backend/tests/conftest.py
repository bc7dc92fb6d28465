"""Shared fixtures of the backend tests: every test that touches the database runs twice,
on the embedded tier (SQLite in a temp data dir, in-process bus) and on the production tier
(PostgreSQL at 127.0.0.1:5432, one database per xdist worker emptied before each test, and the
Redis bus at 127.0.0.1:6379 on a channel namespace of its own); a real Temporal dev server per
test session (xdist worker; the shared plugin in platform/testing), the app over ASGI for HTTP
tests and a real uvicorn server for WebSocket tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from trainyard.core.db import create_engine
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard.migrations import upgrade_to_head
from trainyard.stream.ws_protocol import SendNowWebSocketProtocol
from trainyard_testing.oidc import OidcProvider

from .support import CALLBACK_SECRET, INTERNAL_TOKEN

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"

T = TypeVar("T")


async def postgres_admin() -> asyncpg.Connection:
    try:
        connection: asyncpg.Connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is needed at 127.0.0.1:5432 (user postgres): {exc}")
    return connection


def run_aside(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on a private event loop (sync fixtures cannot use the session's loop)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(work)
    finally:
        loop.close()


async def _create_postgres_database(name: str) -> str:
    admin = await postgres_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return url


async def empty_postgres_database(url: str) -> None:
    """Delete every row (the schema stays: migrating again per test would cost seconds)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


async def _drop_postgres_database(name: str) -> None:
    admin = await postgres_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This xdist worker's PostgreSQL database, created fresh and migrated once per session.

    The name carries the process id too: two test runs on one machine must not share one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"trainyard_test_{worker}_{os.getpid()}"
    url = run_aside(_create_postgres_database(name))
    yield url
    run_aside(_drop_postgres_database(name))


@pytest.fixture(params=["sqlite", "postgres"])
def backend_tier(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """The settings that pick the tier: pass them to `make_settings` as overrides."""
    if request.param == "sqlite":
        return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'trainyard.db'}"}
    url: str = request.getfixturevalue("postgres_database")
    run_aside(empty_postgres_database(url))
    return {
        "database_url": url,
        "redis_url": REDIS_URL,
        "redis_channel_prefix": f"test-{uuid.uuid4().hex}",
    }


def make_settings(data_dir: Path, temporal_address: str, **overrides: object) -> BackendSettings:
    """Settings for one test; every field that matters is explicit so TRAINYARD_* variables
    of the surrounding shell cannot leak in."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'trainyard.db'}",
        "temporal_address": temporal_address,
        "temporal_namespace": "default",
        "task_queue": f"test-{uuid.uuid4().hex}",
        "internal_token": SecretStr(INTERNAL_TOKEN),
        "callback_secret": SecretStr(CALLBACK_SECRET),
        "owner": "local",
        "temporal_rpc_timeout_s": 5.0,
        "allowed_hosts": ["trainyard.test"],
        # Tests register folders made in their own temp folder (data_dir's parent).
        "dataset_roots": [data_dir.parent],
    }
    values.update(overrides)
    return BackendSettings.model_validate(values)


def make_oidc_settings(
    data_dir: Path, temporal_address: str, provider: OidcProvider, **overrides: object
) -> BackendSettings:
    """`make_settings` for an API that signs people in at `provider` (auth_mode oidc, its
    issuer and audience, the CLI's client, groups from the `groups` claim)."""
    values: dict[str, object] = {
        "auth_mode": "oidc",
        "oidc_issuer": provider.issuer,
        "oidc_audience": provider.audience,
        "oidc_cli_client_id": provider.cli_client_id,
        "oidc_groups_claim": "groups",
        "session_secret": SecretStr(secrets.token_urlsafe(32)),
        **overrides,
    }
    return make_settings(data_dir, temporal_address, **values)


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> BackendSettings:
    return make_settings(tmp_path / "data", temporal_address, **backend_tier)


@pytest.fixture
async def app(settings: BackendSettings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (migrations applied, bus and Temporal gateway made)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test"
    ) as client:
        yield client


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "shapes"
    folder.mkdir()
    (folder / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a]\n")
    return folder


@pytest.fixture
def job_body(dataset_dir: Path) -> dict[str, object]:
    """A valid submission; tests change one field at a time."""
    return {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset_dir.as_uri(),
        "task": "detect",
        "epochs": 3,
        "imgsz": 64,
        "batch": 4,
        "gpus": 0,
        "hyperparameters": {"workers": 0, "lr0": 0.01},
    }


@dataclass(frozen=True)
class LiveServer:
    http_url: str
    ws_url: str


@contextmanager
def run_server(
    application: FastAPI,
    ws: type[asyncio.Protocol] | str = SendNowWebSocketProtocol,
    send_buffer: int | None = None,
) -> Iterator[LiveServer]:
    """Serve `application` with uvicorn in a background thread (its own event loop), with the
    WebSocket protocol `trainyard-api` serves with unless `ws` names another. `send_buffer`:
    the kernel send buffer of every accepted connection (Linux copies it from the listener)."""
    sock = socket.socket()
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, lifespan="on", log_level="warning", ws=ws))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            pytest.fail("the uvicorn test server did not start")
        yield LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def live_server(settings: BackendSettings) -> Iterator[LiveServer]:
    with run_server(create_app(settings)) as server:
        yield server


@pytest.fixture
async def live_api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.http_url, timeout=30) as client:
        yield client
