"""The embedded tier's trace store: the local MLflow server's OTLP/HTTP endpoint (decision 015).

`trainyard up` makes sure MLflow's experiment `trainyard-traces` exists once MLflow answers, and
tells the API and the worker (and through it the trainers) to send their spans there, with the
experiment's id in the header MLflow files them by. A user who configured trace export
(an OTLP endpoint of their own, or `OTEL_TRACES_EXPORTER=none`) keeps it: the platform then
sets nothing and the job page shows no link to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

TRACES_EXPERIMENT = "trainyard-traces"
# MLflow's route and header for OTLP/HTTP traces (mlflow.tracing.utils.otlp: OTLP_TRACES_PATH,
# MLFLOW_EXPERIMENT_ID_HEADER), spelled out so that `trainyard up` need not import MLflow.
OTLP_TRACES_PATH = "/v1/traces"
EXPERIMENT_ID_HEADER = "x-mlflow-experiment-id"
# Where the API finds the experiment for its links to a job's trace (BackendSettings).
TRACE_EXPERIMENT_SETTING = "TRAINYARD_TRACE_EXPERIMENT_ID"
# The standard variables by which a user chooses where spans go, or that none do.
USER_TRACE_CHOICES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
)

_EXPERIMENTS = "/api/2.0/mlflow/experiments"


class TraceStoreError(RuntimeError):
    """MLflow answered /health but not the experiment calls."""


def user_chose_trace_export(environ: Mapping[str, str]) -> bool:
    """Whether the user's environment already says where spans go (or that none do)."""
    return any(environ.get(name) for name in USER_TRACE_CHOICES)


def ensure_traces_experiment(mlflow_url: str, timeout_s: float = 10.0) -> str:
    """The id of MLflow's experiment `trainyard-traces`: created when missing, restored when a
    user deleted it (MLflow keeps a deleted experiment's name taken). Idempotent."""
    by_name = {"experiment_name": TRACES_EXPERIMENT}
    with httpx.Client(base_url=mlflow_url, timeout=timeout_s) as mlflow:
        for _ in range(2):  # a second look after losing a race to create it
            found = mlflow.get(f"{_EXPERIMENTS}/get-by-name", params=by_name)
            if found.status_code == 200:
                experiment = found.json()["experiment"]
                experiment_id = str(experiment["experiment_id"])
                if experiment.get("lifecycle_stage") == "deleted":
                    restored = {"experiment_id": experiment_id}
                    _checked(mlflow.post(f"{_EXPERIMENTS}/restore", json=restored))
                return experiment_id
            if _error_code(found) != "RESOURCE_DOES_NOT_EXIST":
                _checked(found)
            created = mlflow.post(f"{_EXPERIMENTS}/create", json={"name": TRACES_EXPERIMENT})
            if created.status_code == 200:
                return str(created.json()["experiment_id"])
            if _error_code(created) != "RESOURCE_ALREADY_EXISTS":
                _checked(created)
    raise TraceStoreError(f"MLflow's experiment {TRACES_EXPERIMENT!r} could not be created")


def trace_export_env(mlflow_url: str, experiment_id: str) -> dict[str, str]:
    """What the API and the worker are given so that their spans (and their trainers') reach
    the experiment over OTLP/HTTP, and the API links a job to its trace there."""
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{mlflow_url.rstrip('/')}{OTLP_TRACES_PATH}",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"{EXPERIMENT_ID_HEADER}={experiment_id}",
        TRACE_EXPERIMENT_SETTING: experiment_id,
    }


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json().get("error_code")
    except ValueError:
        return None
    return code if isinstance(code, str) else None


def _checked(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise TraceStoreError(
            f"MLflow answered {response.request.method} {response.request.url.path} with "
            f"{response.status_code}: {response.text[:300]}"
        )
