"""The launcher interface: what the activities need from "something that runs a trainer"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from trainyard_workflows.internal_api import ExternalQueuePlace

# The trainer contract (docs/trainer-contract.md): the only TRAINYARD_ variables a trainer
# receives. Launchers refuse anything else so a worker secret cannot leak into a trainer.
TRAINER_ENV_VARS = frozenset(
    {
        "TRAINYARD_JOB_ID",
        "TRAINYARD_ATTEMPT",
        "TRAINYARD_CALLBACK_URL",
        "TRAINYARD_CALLBACK_TOKEN",
        "TRAINYARD_MODEL",
        "TRAINYARD_DATASET_URI",
        "TRAINYARD_OUTPUT_DIR",
        "TRAINYARD_TASK",
        "TRAINYARD_EPOCHS",
        "TRAINYARD_IMGSZ",
        "TRAINYARD_BATCH",
        "TRAINYARD_GPUS",
        "TRAINYARD_HYPERPARAMETERS",
        "TRAINYARD_KEEPALIVE_S",
        "TRAINYARD_LOG_FORMAT",
        "TRAINYARD_OUTPUT_URI",
        "TRAINYARD_RESUME_FROM",
        "TRAINYARD_RESUME_SIZE",
        "TRAINYARD_RESUME_SHA256",
    }
)
# The standard boto3 variables, handed over only when storage is S3 (secrets: never logged).
TRAINER_STORAGE_ENV_VARS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}
)


class TrainerNotInstalledError(Exception):
    """The framework's trainer is not available to this launcher; retrying cannot help."""


@dataclass(frozen=True)
class LaunchRequest:
    """One attempt of one job. `env` holds the trainer-contract variables only (and, with S3
    storage, the AWS_* ones); it holds secrets, so it stays out of the repr."""

    job_id: str
    attempt: int
    framework: str
    output_dir: str
    env: Mapping[str, str] = field(repr=False)
    # Wall-clock limit of the attempt (Kubernetes: the Job's activeDeadlineSeconds); None: the
    # launcher's default.
    time_limit_s: float | None = None
    # GPUs the attempt may use (Kubernetes: the container's nvidia.com/gpu limit).
    gpus: int = 0
    # The slug of the job's project (Kubernetes: picks the Job's namespace); None: unknown.
    project_slug: str | None = None
    # The job's priority level (Kueue: the Workload's priority class); None: unknown.
    priority: str | None = None


@dataclass(frozen=True)
class AttemptHandle:
    """Identifies a launched attempt. Plain strings and numbers: it travels through workflow
    history from `launch_trainer` to `watch_trainer` and `cleanup`, possibly to another worker.
    """

    job_id: str
    attempt: int
    pid: int
    output_dir: str
    log_path: str
    # Wall-clock seconds since the epoch: the start of the heartbeat timeout.
    launched_at: float
    # The Kubernetes Job running the attempt ("" for a local process). Defaults keep recorded
    # workflow histories decodable.
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class AttemptStatus:
    """`running`, or exited with `exit_code` (negative: killed by that signal; None: the
    process was not this launcher's child, so its code could not be collected)."""

    running: bool
    exit_code: int | None = None


# Waits that do not end by themselves (Kubernetes' words): a wrong or private image, a pod spec
# the kubelet refuses. An attempt stuck on one of these is given up after a while.
UNSTARTABLE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
    }
)


@dataclass(frozen=True)
class PendingReason:
    """Why a launched attempt is not running yet, in the cluster's words: `reason` is its short
    CamelCase word (Unschedulable, ImagePullBackOff, FailedCreate, ...), `message` its text."""

    reason: str
    message: str
    # The job a preempted attempt made room for, when the cluster names it (Kueue does).
    by: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason

    def as_data(self) -> dict[str, str]:
        """As an event's data holds it (`by` only when known)."""
        data = {"reason": self.reason, "message": self.message}
        return data | ({"by": self.by} if self.by is not None else {})


@dataclass(frozen=True)
class LaunchedObject:
    """Something a launcher created for an attempt and may have to reclaim (a Kubernetes Job or
    Secret). `active`: a Job whose pod may still run; `owned`: a Secret the Job will take along
    when it goes."""

    kind: str
    namespace: str
    name: str
    job_id: str
    attempt: int
    active: bool = False
    owned: bool = False


class Launcher(Protocol):
    """Runs trainers. Every method is idempotent on (job_id, attempt)."""

    async def launch(self, request: LaunchRequest) -> AttemptHandle:
        """Start the attempt, or return the handle of that attempt if it is already running.

        Raises TrainerNotInstalledError when the framework's trainer is missing.
        """
        ...

    async def status(self, handle: AttemptHandle) -> AttemptStatus:
        """Whether the attempt is still running, and its exit code once it is not."""
        ...

    async def stop(self, handle: AttemptHandle, grace_s: float) -> AttemptStatus:
        """Ask the attempt to stop (SIGTERM or equivalent), force it after `grace_s` seconds;
        returns once it is gone. Stopping a finished attempt just reports its status."""
        ...

    async def log_tail(self, handle: AttemptHandle, lines: int) -> list[str]:
        """The last `lines` lines of the attempt's combined stdout and stderr."""
        ...

    async def pending_reasons(self, handle: AttemptHandle) -> list[PendingReason]:
        """Why the attempt waits to run (no node for it, an image that cannot be pulled, a
        quota); empty once it runs, when it is over, or when the launcher never waits."""
        ...

    async def disruptions(self, handle: AttemptHandle) -> list[PendingReason]:
        """The attempt's runs the cluster took away (preemption, eviction, a node drain), oldest
        first; each was replaced without counting as the trainer's failure."""
        ...

    async def queued_in(self, handle: AttemptHandle) -> ExternalQueuePlace | None:
        """Where a queue outside the platform (Kueue) holds the attempt before it may start;
        None when nothing does (admitted, running, over, or no such queue)."""
        ...

    async def launched_objects(self) -> list[LaunchedObject]:
        """Everything this launcher created that still exists (for the reconciler)."""
        ...

    async def delete_launched(self, launched: LaunchedObject) -> bool:
        """Delete `launched` (a Job with its pods); False if it was already gone."""
        ...

    async def aclose(self) -> None:
        """Release the launcher's connections; running attempts are left as they are (a worker
        stops its subprocess trainers itself at shutdown: `SubprocessLauncher.stop_all`)."""
        ...
