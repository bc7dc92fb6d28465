"""`trainyard-api` / `python -m trainyard.api`: serve the backend with uvicorn.

Host, port and log level come from the settings (TRAINYARD_API_HOST, TRAINYARD_API_PORT,
TRAINYARD_LOG_LEVEL), so a process supervisor only has to set the environment. With
TRAINYARD_INTERNAL_PORT set, the same app (one lifespan, one event loop) also listens on that
port, and core/listeners.py decides what each port serves.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from trainyard.callbacks.aiosqlite_internals import check_aiosqlite_internals
from trainyard.core.listeners import listening_sockets
from trainyard.core.quiet_server import QuietServer
from trainyard.core.settings import BackendSettings
from trainyard.core.uvicorn_internals import check_uvicorn_internals
from trainyard.main import create_app
from trainyard.stream.gc_policy import tune_for_serving
from trainyard.stream.ws_protocol import SendNowWebSocketProtocol
from trainyard_workflows.telemetry.logs import configure_logging

# uvicorn's own logger, so these lines look like (and go where) its start-up lines do.
logger = logging.getLogger("uvicorn.error")


def main() -> None:
    check_uvicorn_internals()  # QuietServer and SendNowWebSocketProtocol rely on them
    check_aiosqlite_internals()  # the SQLite heartbeat ingest relies on them
    settings = BackendSettings()
    # Every line through one formatter (uvicorn's too: log_config=None below keeps its own
    # handlers out); the stream-ticket redaction is a filter on uvicorn's loggers, so it
    # holds in both formats.
    configure_logging("trainyard-api", settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_for_serving()  # the start-up heap is built: keep it out of later collections
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        log_config=None,
        ws=SendNowWebSocketProtocol,  # the stream's fan-out writes to caught-up clients directly
        # The supervisor sends SIGTERM; give open streams a moment, then go.
        timeout_graceful_shutdown=5,
    )
    try:
        # Bound before the lifespan starts, as uvicorn binds its own single port.
        sockets = listening_sockets(settings)
    except OSError as exc:
        logger.error(exc)  # uvicorn.Config has configured its loggers
        sys.exit(STARTUP_FAILURE)  # as uvicorn does for a port in use
    server = QuietServer(config)
    if sockets is not None:
        # uvicorn logs no address for sockets it did not bind.
        logger.info(
            "Serving the public API on port %d and the internal API on port %d",
            sockets[0].getsockname()[1],
            sockets[1].getsockname()[1],
        )
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: a port in use, a failing lifespan


if __name__ == "__main__":
    main()
