"""`python -m trainyard.cli.mlflow_server`: the embedded tier's MLflow server, MLflow's FastAPI
app in this one process under the API's quiet uvicorn server (decision 015).

MLflow's FastAPI app is its Flask app (tracking, registry, proxied artifacts, UI) plus the
routes MLflow serves only under uvicorn, among them OTLP/HTTP traces at `/v1/traces`: the
embedded tier's trace store. `mlflow server` would run it under plain uvicorn in a child
process, whose main loop wakes ten times a second; here it runs as `mlflow server` sets it up
(the same server variables, stores initialised and migrated before the port opens) under
`QuietServer`, which wakes once a second and stops at once on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Sequence

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from trainyard.core.quiet_server import QuietServer
from trainyard.core.uvicorn_internals import check_uvicorn_internals

# Artifacts go through the server (`mlflow server --artifacts-destination`): runs record this
# root, and clients upload over HTTP, so the worker needs no access to the folder.
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainyard.cli.mlflow_server")
    parser.add_argument("--backend-store-uri", required=True)
    parser.add_argument("--artifacts-destination", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def server_variables(backend_store_uri: str, artifacts_destination: str) -> dict[str, str]:
    """What `mlflow server` tells its HTTP server's process (mlflow/server/__init__.py
    `_run_server`), for a tracking server that proxies artifacts and runs no job executor."""
    from mlflow.environment_variables import (
        _MLFLOW_IN_JOB_EXECUTOR,
        _MLFLOW_SERVER_BOOT_ID,
        _MLFLOW_SGI_NAME,
    )
    from mlflow.server.constants import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )

    return {
        BACKEND_STORE_URI_ENV_VAR: backend_store_uri,
        REGISTRY_STORE_URI_ENV_VAR: backend_store_uri,
        ARTIFACT_ROOT_ENV_VAR: PROXIED_ARTIFACT_ROOT,
        SERVE_ARTIFACTS_ENV_VAR: "true",
        ARTIFACTS_DESTINATION_ENV_VAR: artifacts_destination,
        _MLFLOW_SGI_NAME.name: "uvicorn",
        _MLFLOW_SERVER_BOOT_ID.name: uuid.uuid4().hex,
        _MLFLOW_IN_JOB_EXECUTOR.name: "false",
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = _arguments(argv)
    check_uvicorn_internals()  # QuietServer relies on them
    # Read by MLflow's handlers when they open the stores, so set before the first request.
    os.environ.update(server_variables(args.backend_store_uri, args.artifacts_destination))
    from mlflow.server.handlers import initialize_backend_stores

    # As `mlflow server` does before it starts its HTTP server: a fresh store is migrated
    # before the port opens, so a /health answer means the stores are ready.
    initialize_backend_stores(args.backend_store_uri, args.backend_store_uri, PROXIED_ARTIFACT_ROOT)
    from mlflow.server.fastapi_app import app

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=False,  # as gunicorn's default: one line per OTLP export would flood the log
        # On SIGTERM: an idle kept-alive connection is closed at once; a request in flight
        # gets a moment.
        timeout_graceful_shutdown=5,
    )
    server = QuietServer(config)
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)  # as uvicorn.run: a port in use, a failing lifespan


if __name__ == "__main__":
    main()
