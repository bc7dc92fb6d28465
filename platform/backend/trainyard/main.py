"""The backend application.

Run it with `trainyard-api` (or `python -m trainyard.api`), or with uvicorn directly:
`uvicorn trainyard.main:app` or `uvicorn trainyard.main:create_app --factory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trainyard.admission.internal_router import router as admission_internal_router
from trainyard.auth.factory import open_authenticator
from trainyard.auth.public_config import router as auth_config_router
from trainyard.auth.same_origin import SameOriginGuard
from trainyard.auth.stream_tickets import redact_tickets_in_server_logs
from trainyard.auth.web_router import router as web_sign_in_router
from trainyard.callbacks.router import router as callbacks_router
from trainyard.chat.router import router as chat_router
from trainyard.core.body_limits import BodyLimits
from trainyard.core.db import Database, create_engine
from trainyard.core.errors import error_responses, install_error_handlers
from trainyard.core.listeners import install_port_split, pod_scrape
from trainyard.core.rate_limits import open_rate_limiter
from trainyard.core.security_headers import SecurityHeaders
from trainyard.core.settings import BackendSettings
from trainyard.core.supervision import readiness_section
from trainyard.core.temporal import TemporalGateway, TemporalUnavailable
from trainyard.datasets.router import UPLOAD_PATHS
from trainyard.datasets.router import router as datasets_router
from trainyard.datasets.upload import upload_body_limit
from trainyard.frameworks.router import router as frameworks_router
from trainyard.internal.router import router as internal_router
from trainyard.jobs.router import router as jobs_router
from trainyard.migrations import upgrade_to_head
from trainyard.observability.callback_metrics import CallbackMetrics
from trainyard.observability.job_lifecycle import JobLifecycleMetrics
from trainyard.observability.router import router as metrics_router
from trainyard.observability.tracing import (
    NATIVE_TELEMETRY_OFF,
    instrument_api,
    instrument_engine,
)
from trainyard.projects.router import router as projects_router
from trainyard.runtime import Runtime, runtime_of
from trainyard.stream.factory import open_bus
from trainyard.stream.fanout import StreamFanout
from trainyard.stream.websocket import router as stream_router
from trainyard.web.static import CHECKOUT_WEB_DIR, mount_web_app
from trainyard_workflows.storage import StorageSettings, object_store_from

logger = logging.getLogger(__name__)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _lifespan(settings: BackendSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens the process's runtime (database, bus, streams, Temporal, the workflow sweep)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        stack = AsyncExitStack()
        engine = create_engine(
            settings.database_url, settings.database_pool_size, settings.database_max_overflow
        )
        instrument_engine(engine)
        try:
            await upgrade_to_head(engine)
            bus = await stack.enter_async_context(open_bus(settings))
            fanout = StreamFanout(bus, max_backlog=settings.stream_queue_size)
            stack.push_async_callback(fanout.close)
            db = Database(engine, bus)
            db.observe(JobLifecycleMetrics(engine))
            limiter = await stack.enter_async_context(
                open_rate_limiter(
                    settings.rate_limits,
                    settings.redis_url,
                    settings.redis_channel_prefix,
                    settings.redis_timeout_s,
                )
            )
            app.state.runtime = runtime = Runtime(
                settings=settings,
                db=db,
                bus=bus,
                fanout=fanout,
                authenticator=await stack.enter_async_context(
                    open_authenticator(settings, db, limiter)
                ),
                rate_limiter=limiter,
                temporal=TemporalGateway(
                    settings.temporal_address,
                    settings.temporal_namespace,
                    settings.temporal_rpc_timeout_s,
                ),
            )
            db.observe(runtime.admission)  # a job that ended frees what queued jobs wait for
            stack.push_async_callback(runtime.admission.close)
            # Starts what a Temporal outage or a stop between a commit and its call left undone.
            sweep = asyncio.create_task(runtime.workflows.run(), name="workflow sweep")
            stack.push_async_callback(_cancelled, sweep)
            yield
        finally:
            await stack.aclose()
            await engine.dispose()

    return lifespan


def create_app(
    settings: BackendSettings | None = None, storage: StorageSettings | None = None
) -> FastAPI:
    """The API for `settings` and `storage` (read from TRAINYARD_* variables when not given)."""
    settings = settings if settings is not None else BackendSettings()
    storage = storage if storage is not None else StorageSettings(data_dir=settings.data_dir)

    app = FastAPI(
        title="Trainyard",
        version="0.1.0",
        summary="Submit, follow and cancel training jobs.",
        lifespan=_lifespan(settings),
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    instrument_api(app, settings)  # a server span around every middleware and route
    install_error_handlers(app)
    # Inside the origin and host checks (refused callers are refused first), outside the app.
    app.add_middleware(
        BodyLimits,
        json_limit=settings.max_json_body_bytes,
        multipart_limit=upload_body_limit(storage.max_upload_bytes),
        multipart_paths=UPLOAD_PATHS,
    )
    redact_tickets_in_server_logs()  # a stream ticket in a query string never reaches a log
    app.add_middleware(
        SameOriginGuard,
        trusted_hosts=settings.trusted_hosts,
        trusted_origins=settings.trusted_origins,
        unguarded=pod_scrape(settings),
    )
    app.add_middleware(
        SecurityHeaders, https=(settings.public_url or "").lower().startswith("https://")
    )
    # Outside the checks above, so a callback they refuse is counted too.
    app.add_middleware(CallbackMetrics)
    # Outermost (added last): a route of the other port is not found, whoever asks.
    install_port_split(app, settings)
    # Made once: a boto3 client is thread-safe and opens connections only when used.
    app.state.storage_settings = storage
    app.state.object_store = object_store_from(storage)
    # Trainers' callbacks first: the most frequent requests by far, and FastAPI tries every
    # route of each router included before theirs (decision 007). No path overlaps another's.
    for router in (
        callbacks_router,
        jobs_router,
        datasets_router,
        frameworks_router,
        chat_router,
        stream_router,
        projects_router,
        web_sign_in_router,
        auth_config_router,
        internal_router,
        admission_internal_router,
        metrics_router,
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (it says nothing about its dependencies)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses=error_responses(503))
    async def readyz(request: Request) -> JSONResponse:
        """200 when the database, Temporal (and Redis, if used) answer; 503 naming what is down.
        Under `trainyard up`, also each component's state and restarts (`supervision`)."""
        runtime = runtime_of(request)
        checks: dict[str, str] = {}
        # Why a dependency is down goes to the log only: its error text (hosts, drivers,
        # versions) is nobody's business on a public address.
        try:
            await runtime.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready"
            logger.warning("readiness: the database is unreachable: %s", exc)
            checks["database"] = "unreachable"
        try:
            await runtime.temporal.check()
            checks["temporal"] = "ok"
        except TemporalUnavailable as exc:
            logger.warning("readiness: Temporal is unreachable: %s", exc.message)
            checks["temporal"] = "unreachable"
        for name, state in (await runtime.bus.readiness()).items():
            if state != "ok":
                logger.warning("readiness: %s: %s", name, state)
            checks[name] = state if state == "ok" else "unreachable"
        down = [name for name, result in checks.items() if result != "ok"]
        supervision = readiness_section(settings.supervision_state)
        if down:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "detail": f"{' and '.join(down)} down",
                    "code": "unavailable",  # as in every error body (core.errors.ErrorBody)
                    "checks": checks,
                    **supervision,
                },
                status_code=503,
            )
        return JSONResponse({"status": "ready", "checks": checks, **supervision})

    # Last: its catch-all page route must not shadow any API route.
    mount_web_app(app, settings.web_dir or CHECKOUT_WEB_DIR)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn trainyard.main:app` reads this; building the app lazily keeps importing this
    # module free of side effects (no settings are read until the app is asked for).
    if name == "app":
        return create_app()
    raise AttributeError(name)
