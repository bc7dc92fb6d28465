"""A thin, blocking wrapper of MlflowClient with the few idempotent steps a job needs.

Every step may be repeated (Temporal retries activities): the run is found again by its job id
tag, the metrics cursor lives on the run itself (tag `trainyard.synced_seq`), and a model
version is registered once per run. Callers run these in a thread (asyncio.to_thread).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

EXPERIMENT_NAME = "trainyard"
JOB_ID_TAG = "trainyard.job_id"
SYNCED_SEQ_TAG = "trainyard.synced_seq"
# The newest epoch whose metrics are on the run: a resumed attempt reports its checkpoint's
# epoch again, and an epoch is logged once.
SYNCED_EPOCH_TAG = "trainyard.synced_epoch"
# MLflow's limit on metrics in one log_batch request.
_BATCH = 1000
_JOB_ID = re.compile(r"^job_[A-Za-z0-9_-]+$")
_MODEL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")

# Terminal job state -> MLflow run status.
RUN_STATUS = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELLED": "KILLED"}


@dataclass(frozen=True)
class SyncCursor:
    """How far the job's events are on the run: the newest event seq and epoch."""

    seq: int = 0
    epoch: int = 0


@dataclass(frozen=True)
class RunRef:
    run_id: str
    experiment_id: str


def model_name_for(framework: str, model: str) -> str:
    """`trainyard-<framework>-<model stem>`, e.g. `trainyard-ultralytics-yolo11n`: every job
    training the same architecture adds a version to the same registered model."""
    stem = Path(model).stem or model
    return _MODEL_NAME_CHARS.sub("-", f"trainyard-{framework}-{stem}")


def _already_exists(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_ALREADY_EXISTS)


class MlflowTracker:
    """The MLflow side of a job: its run, metrics, artifacts and registered model version."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def answers(self) -> bool:
        """Whether the tracking server answers now (one cheap read)."""
        try:
            self._client.search_experiments(max_results=1)
        except Exception:
            return False
        return True

    def experiment_id(self) -> str:
        experiment = self._client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self._client.create_experiment(EXPERIMENT_NAME))
        except MlflowException as error:
            # Another worker created it between our lookup and our create.
            if not _already_exists(error):
                raise
        experiment = self._client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is None:
            raise RuntimeError(f"MLflow experiment {EXPERIMENT_NAME!r} vanished")
        return str(experiment.experiment_id)

    def find_run(self, job_id: str) -> RunRef | None:
        """The job's run, if one was created already."""
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"job id {job_id!r} is not of the form job_<id>")
        experiment_id = self.experiment_id()
        runs = self._client.search_runs(
            [experiment_id], filter_string=f"tags.`{JOB_ID_TAG}` = '{job_id}'", max_results=1
        )
        if not runs:
            return None
        return RunRef(runs[0].info.run_id, experiment_id)

    def ensure_run(self, job_id: str, tags: Mapping[str, str], params: Sequence[Param]) -> RunRef:
        """The job's run (created with its tags and params the first time)."""
        found = self.find_run(job_id)
        if found is not None:
            return found
        experiment_id = self.experiment_id()
        run = self._client.create_run(
            experiment_id, tags={**tags, JOB_ID_TAG: job_id}, run_name=job_id
        )
        self._client.log_batch(run.info.run_id, params=list(params))
        return RunRef(run.info.run_id, experiment_id)

    def synced_seq(self, run_id: str) -> int:
        """The seq of the newest job event whose metrics are on the run (0: none yet)."""
        return self.sync_cursor(run_id).seq

    def sync_cursor(self, run_id: str) -> SyncCursor:
        tags = self._client.get_run(run_id).data.tags

        def number(tag: str) -> int:
            value = tags.get(tag, "0")
            return int(value) if value.isdigit() else 0

        return SyncCursor(number(SYNCED_SEQ_TAG), number(SYNCED_EPOCH_TAG))

    def log_metrics(
        self, run_id: str, metrics: Sequence[Metric], synced: int | SyncCursor | None
    ) -> None:
        """Log the metrics in batches; the cursor (if given: a seq, or seq and epoch) moves
        with the last batch, in the same request, so metrics and cursor never disagree."""
        if isinstance(synced, int):
            synced = SyncCursor(seq=synced)
        cursor = []
        if synced is not None:
            cursor.append(RunTag(SYNCED_SEQ_TAG, str(synced.seq)))
            if synced.epoch:
                cursor.append(RunTag(SYNCED_EPOCH_TAG, str(synced.epoch)))
        if not metrics:
            if cursor:
                self._client.log_batch(run_id, tags=cursor)
            return
        for start in range(0, len(metrics), _BATCH):
            chunk = list(metrics[start : start + _BATCH])
            last = start + _BATCH >= len(metrics)
            self._client.log_batch(run_id, metrics=chunk, tags=cursor if last else [])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(tags.items())])

    def log_file(self, run_id: str, path: Path, artifact_path: str) -> None:
        self._client.log_artifact(run_id, str(path), artifact_path)

    def log_folder(self, run_id: str, path: Path, artifact_path: str) -> None:
        """The folder's files under `artifact_path` (a saved model is registered from there)."""
        self._client.log_artifacts(run_id, str(path), artifact_path)

    def end(self, run_id: str, job_state: str) -> str:
        """Close the run with the status matching the job's terminal state."""
        status = RUN_STATUS.get(job_state, "FAILED")
        self._client.set_terminated(run_id, status=status)
        return status

    def register(self, run_id: str, model_name: str, artifact_path: str) -> str:
        """Register the run's `artifact_path` as a version of `model_name`, once per run."""
        try:
            self._client.create_registered_model(
                model_name, description="Trained by Trainyard (one version per succeeded job)."
            )
        except MlflowException as error:
            if not _already_exists(error):
                raise
        existing = self._client.search_model_versions(
            f"name = '{model_name}' and run_id = '{run_id}'"
        )
        if existing:
            return str(existing[0].version)
        artifact_uri = self._client.get_run(run_id).info.artifact_uri
        version = self._client.create_model_version(
            model_name, source=f"{artifact_uri}/{artifact_path}", run_id=run_id
        )
        return str(version.version)

    def run_info(self, run_id: str) -> dict[str, Any]:
        """Status and tags of a run (for logs and tests)."""
        run = self._client.get_run(run_id)
        return {"status": run.info.status, "tags": dict(run.data.tags)}
