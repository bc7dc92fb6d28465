"""`trainyard-api` / `python -m trainyard.api`: serve the backend with uvicorn.

Host, port and log level come from the settings (TRAINYARD_API_HOST, TRAINYARD_API_PORT,
TRAINYARD_LOG_LEVEL), so a process supervisor only has to set the environment.
"""

from __future__ import annotations

import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from trainyard.callbacks.aiosqlite_internals import check_aiosqlite_internals
from trainyard.core.quiet_server import QuietServer
from trainyard.core.settings import BackendSettings
from trainyard.core.uvicorn_internals import check_uvicorn_internals
from trainyard.main import create_app
from trainyard.stream.gc_policy import tune_for_serving
from trainyard.stream.ws_protocol import SendNowWebSocketProtocol


def main() -> None:
    check_uvicorn_internals()  # QuietServer and SendNowWebSocketProtocol rely on them
    check_aiosqlite_internals()  # the SQLite heartbeat ingest relies on them
    settings = BackendSettings()
    app = create_app(settings)
    tune_for_serving()  # the start-up heap is built: keep it out of later collections
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        ws=SendNowWebSocketProtocol,  # the stream's fan-out writes to caught-up clients directly
        # The supervisor sends SIGTERM; give open streams a moment, then go.
        timeout_graceful_shutdown=5,
    )
    server = QuietServer(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: a port in use, a failing lifespan


if __name__ == "__main__":
    main()
