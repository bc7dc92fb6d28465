"""Settings of the worker process (one class, env prefix TRAINYARD_)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainyard_workflows.contracts import DEFAULT_TASK_QUEUE
from trainyard_workflows.telemetry.logs import LogFormat

# The token `trainyard up` would otherwise have to invent for a bare `trainyard-worker`.
# It only protects a loopback backend on a developer machine: a production deployment must
# set TRAINYARD_INTERNAL_TOKEN to a real secret shared with the backend.
EMBEDDED_INTERNAL_TOKEN = "embedded-internal-token"

# A Kubernetes namespace name (DNS-1123 label).
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Job ids become folder names; anything but `job_` + a safe word could escape `<data_dir>/jobs`.
_JOB_ID = re.compile(r"^job_[A-Za-z0-9_-]+$")


def _default_trainers_dir() -> Path:
    # workflows/trainyard_workflows/settings.py -> the repository root is two folders up.
    # True for the workspace's editable install; an installed wheel (an image) sets
    # TRAINYARD_TRAINERS_DIR instead.
    return Path(__file__).resolve().parents[2] / "trainers"


class WorkerSettings(BaseSettings):
    """Configuration of `trainyard-worker`; every field reads `TRAINYARD_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="forbid")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # How long the worker keeps trying to reach Temporal at start-up: `trainyard up` starts
    # the dev server and the worker side by side, so the server may not be listening yet.
    temporal_connect_timeout_s: float = Field(default=60.0, gt=0)
    task_queue: str = DEFAULT_TASK_QUEUE

    backend_url: str = "http://127.0.0.1:8000"
    # Where trainers send callbacks; differs from backend_url when trainers run elsewhere
    # (a Kubernetes pod cannot reach the worker's loopback address).
    callback_url: str | None = None
    internal_token: str = EMBEDDED_INTERNAL_TOKEN

    data_dir: Path = Path(".trainyard")
    trainers_dir: Path = Field(default_factory=_default_trainers_dir)
    launcher: Literal["subprocess", "kubernetes"] = "subprocess"
    # Subprocess launcher: the user trainers run as (launchers/trainer_user.py). Unset: `nobody`
    # when the worker runs as root (as the platform user, with a warning, where `nobody` cannot
    # run the trainer); empty: the platform user; a name: that user, or no launch.
    trainer_user: str | None = None

    # Kubernetes launcher (TRAINYARD_LAUNCHER=kubernetes): one Job per attempt. Dicts and lists
    # are JSON in the environment, e.g. TRAINYARD_K8S_IMAGES='{"ultralytics": "reg/trainer:1"}'.
    k8s_namespace: str = "default"
    # Project slug -> namespace of its trainer Jobs; projects not in it use k8s_namespace
    # (launchers/kubernetes_namespaces.py). The worker needs its Role in each namespace.
    k8s_project_namespaces: dict[str, str] = Field(default_factory=dict)
    k8s_images: dict[str, str] = Field(default_factory=dict)  # framework -> trainer image
    k8s_node_selector: dict[str, str] = Field(default_factory=dict)
    k8s_tolerations: list[dict[str, str | int]] = Field(default_factory=list)
    k8s_priority_class: str | None = None
    k8s_service_account: str | None = None
    # The user and group trainer containers run as (never root): the trainer images' own user
    # (trainers/*/Dockerfile); fsGroup too, so the scratch volumes are theirs.
    k8s_run_as_user: int = Field(default=10001, ge=1)
    k8s_run_as_group: int = Field(default=10001, ge=1)
    k8s_ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    # How long an attempt may wait on something that waiting does not fix (an image that cannot
    # be pulled) before its job fails with that reason.
    unstartable_timeout_s: float = Field(default=300.0, gt=0)
    # How often the reconciler looks for trainer Jobs and Secrets no live attempt needs.
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    # The Job's activeDeadlineSeconds when a launch request sets no time limit.
    k8s_default_time_limit_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    # Absent: the in-cluster service account (the worker runs as a pod).
    k8s_kubeconfig: Path | None = None
    # Kueue admits trainer Jobs (launchers/kubernetes_kueue.py): the LocalQueue they are
    # submitted to, the same name in each training namespace. Unset: no Kueue, the platform's
    # own ledger alone decides (docs/operations.md, "Kueue").
    k8s_kueue_queue: str | None = None

    stop_grace_s: float = Field(default=10.0, ge=0)
    # Also the watch's heartbeat period: must stay well under its 30 s heartbeat timeout.
    watch_poll_s: float = Field(default=1.0, gt=0, le=10)
    # How often the watch asks the backend when the trainer last called (to notice a silent
    # one); at most a quarter of the heartbeat timeout. The process itself is polled every
    # watch_poll_s: that is local and cheap, the backend request is not (the API shares the
    # machine with the training it watches on the embedded tier).
    liveness_poll_s: float = Field(default=10.0, gt=0)
    keepalive_s: float = Field(default=15.0, gt=0)
    # How often the watch copies the trainer's newest log lines onto the job's timeline as a
    # `log` event (the web UI's log tail), at the first liveness poll after this long; also
    # once when the attempt ends.
    log_ship_s: float = Field(default=10.0, ge=1)

    # MLflow tracking server (http://host:port); absent: jobs are not tracked.
    mlflow_tracking_uri: str | None = None
    # How often a running job's new epoch metrics are copied to its MLflow run (one `log_batch`
    # for all the epochs that ended meanwhile); the job's own stream is live, MLflow a mirror.
    tracking_sync_s: float = Field(default=15.0, gt=0, le=300)
    # How long closing a finished job's run waits for an MLflow server that does not answer
    # (restarting, briefly down) before it closes what it can and leaves a warning.
    tracking_finish_wait_s: float = Field(default=600.0, ge=0)

    # --- issue 21: A (metrics)
    # Prometheus: the worker's own metrics (telemetry/metrics.py) on metrics_host:metrics_port,
    # the Temporal SDK's (`temporal_*`) on metrics_host:temporal_metrics_port. None: not served.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    temporal_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # --- issue 22: capacity
    # What admission may hand out (capacity/), reported to the backend at start and every
    # capacity_report_interval_s. gpus: the GPUs trainers may use, in place of discovery (NVML
    # or nvidia-smi here, the nodes' allocatable nvidia.com/gpu on Kubernetes). cpu_run_slots:
    # CPU-only trainings at a time; unset, a quarter of this machine's cores (at least one).
    gpus: int | None = Field(default=None, ge=0)
    # With `gpus` on Kubernetes: the most GPUs one node has. For GPU node groups that scale to
    # zero there is no node to discover while idle, yet a job must be admitted for its pod to
    # make the autoscaler add one: set `gpus` to what the groups may grow to and this to one
    # node's. Unset: `gpus` (one machine).
    gpus_per_node: int | None = Field(default=None, ge=1)
    cpu_run_slots: int | None = Field(default=None, ge=1)
    capacity_report_interval_s: float = Field(default=60.0, gt=0)

    # --- issue 21: E (logs)
    # `console`: readable lines (the embedded tier); `json`: one JSON object a line, for a log
    # shipper (telemetry/logs.py). Trainers get it as TRAINYARD_LOG_FORMAT.
    log_format: LogFormat = "console"

    @field_validator("data_dir", "trainers_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Trainers run with their attempt dir as cwd, so relative paths would drift.
        return value.expanduser().resolve()

    @field_validator("backend_url", "callback_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value is not None else None

    @field_validator(
        "k8s_priority_class",
        "k8s_service_account",
        "k8s_kubeconfig",
        "k8s_kueue_queue",
        mode="before",
    )
    @classmethod
    def _empty_is_absent(cls, value: object) -> object:
        # A chart renders an unset optional value as an empty variable.
        return None if value == "" else value

    @field_validator("k8s_project_namespaces")
    @classmethod
    def _namespace_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {
            slug: namespace for slug, namespace in value.items() if not _NAMESPACE.match(namespace)
        }
        if bad:
            raise ValueError(
                f"TRAINYARD_K8S_PROJECT_NAMESPACES: not Kubernetes namespace names: {bad}"
            )
        return value

    @model_validator(mode="after")
    def _callback_defaults_to_backend(self) -> WorkerSettings:
        if self.callback_url is None:
            self.callback_url = self.backend_url
        return self

    @model_validator(mode="after")
    def _kubernetes_needs_images(self) -> WorkerSettings:
        if self.launcher == "kubernetes" and not self.k8s_images:
            raise ValueError(
                "TRAINYARD_LAUNCHER=kubernetes needs TRAINYARD_K8S_IMAGES, a JSON object mapping "
                'each framework to its trainer image, e.g. {"ultralytics": "registry/trainer:1.0"}'
            )
        return self

    @property
    def trainer_callback_url(self) -> str:
        """The URL handed to trainers as TRAINYARD_CALLBACK_URL."""
        return self.callback_url or self.backend_url

    def attempt_dir(self, job_id: str, attempt: int) -> Path:
        """`<data_dir>/jobs/<job_id>/attempt-<n>/`: the trainer's TRAINYARD_OUTPUT_DIR."""
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"job id {job_id!r} is not of the form job_<hex>")
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        return self.data_dir / "jobs" / job_id / f"attempt-{attempt}"


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    """The process's settings, read from the environment once, on first use."""
    return WorkerSettings()
