"""Activities that mirror a job into MLflow: its run, per-epoch metrics, artifacts, status and
registered model version (docs/architecture.md, "Tracking").

Tracking never fails a job: every step catches its own errors, logs them and posts a
`tracking_warning` event on the job's timeline, then carries on with the next step.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity

from trainyard_workflows.activities.tracking_schemas import (
    FinishTrackingInput,
    FinishTrackingResult,
    StartTrackingInput,
    SyncTrackingInput,
    TrackingRun,
)
from trainyard_workflows.attempt_outputs import (
    AttemptOutput,
    LocationRefused,
    confined,
    local_path,
    resolved_inside,
)
from trainyard_workflows.backend_client import BackendClient, BackendError
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings, object_store_for_uri
from trainyard_workflows.tracking.metrics import (
    final_metrics,
    heartbeat_metrics,
    run_params,
    run_tags,
    system_metrics,
)
from trainyard_workflows.tracking.mlflow_tracker import MlflowTracker, SyncCursor, model_name_for

logger = logging.getLogger(__name__)

T = TypeVar("T")

WARNING_EVENT = "tracking_warning"
# `done` artifacts copied into the run (name -> folder in the run); the others (the last
# checkpoint, the whole run folder) are recorded as `trainyard.artifact.<name>` tags only.
LOGGED_ARTIFACTS = {"weights": "weights", "results": "results"}
_EVENTS_PAGE = 1000
_HEARTBEAT_EVERY_S = 1.0
# Between sync rounds: well under the activity's 30 s heartbeat timeout, few wake-ups.
_IDLE_HEARTBEAT_EVERY_S = 5.0


class TrackingActivities:
    """Tracking as activity methods; `tracker` is None when tracking is off (they do nothing)."""

    def __init__(
        self, backend: BackendClient, tracker: MlflowTracker | None, settings: WorkerSettings
    ) -> None:
        self._backend = backend
        self._tracker = tracker
        self._settings = settings

    @activity.defn
    async def start_tracking(self, request: StartTrackingInput) -> TrackingRun | None:
        """Create (or find again) the job's run with its request as params; None if off or
        MLflow failed (then the job simply runs untracked)."""
        tracker = self._tracker
        if tracker is None:
            return None
        try:
            job = await self._backend.job(request.job_id)
            tags = run_tags(job, request.attempt)
            ref = await self._in_thread(tracker.ensure_run, request.job_id, tags, run_params(job))
            await self._backend.record_tracking(
                request.job_id,
                {"mlflow_run_id": ref.run_id, "mlflow_experiment_id": ref.experiment_id},
            )
        except Exception as error:
            await self._warn(request.job_id, "could not create the MLflow run", error)
            return None
        logger.info("job %s: MLflow run %s", request.job_id, ref.run_id)
        return TrackingRun(ref.run_id, ref.experiment_id)

    @activity.defn
    async def sync_tracking(self, request: SyncTrackingInput) -> None:
        """Copy new epoch and system metrics to the run every `tracking_sync_s` until cancelled.

        Failures are retried on the next round; only the first is posted as a warning.
        """
        warned = False
        seen = 0  # the newest event seq this loop has looked at
        # The run's cursor, read once and then kept: this loop is the run's only writer while
        # the attempt trains. Forgotten after a failure (a write that timed out may have landed).
        cursor: SyncCursor | None = None
        while True:
            activity.heartbeat()
            try:
                seen, cursor = await self._sync_if_new_metrics(
                    request.job_id, request.run_id, seen, cursor
                )
            except Exception as error:
                cursor = None
                if not warned:
                    await self._warn(request.job_id, "could not sync metrics to MLflow", error)
                    warned = True
            await self._heartbeating_sleep(self._settings.tracking_sync_s)

    async def _until_answering(self, tracker: MlflowTracker) -> None:
        """Wait (heartbeating, up to `tracking_finish_wait_s`) for MLflow to answer: a server
        restarting when a job ends must not leave its run open without its final metrics."""
        deadline = time.monotonic() + self._settings.tracking_finish_wait_s
        pause = 1.0
        while time.monotonic() < deadline and not await self._in_thread(tracker.answers):
            await self._heartbeating_sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 15.0)

    @staticmethod
    async def _heartbeating_sleep(seconds: float) -> None:
        """Sleep, heartbeating every `_IDLE_HEARTBEAT_EVERY_S`: the rounds' period may be longer
        than the activity's heartbeat timeout."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _IDLE_HEARTBEAT_EVERY_S))
            activity.heartbeat()

    @activity.defn
    async def finish_tracking(self, request: FinishTrackingInput) -> FinishTrackingResult:
        """Last metrics, final metrics, artifacts, run status and (succeeded jobs) model version."""
        tracker = self._tracker
        if tracker is None:
            return FinishTrackingResult(status=None)
        job_id, run_id = request.job_id, request.run_id
        await self._until_answering(tracker)
        warnings = 0
        job: dict[str, Any] = {}
        try:
            await self._sync(job_id, run_id)
            job = await self._backend.job(job_id)
            await self._log_final_metrics(tracker, run_id, job)
        except Exception as error:
            warnings += 1
            await self._warn(job_id, "could not log the final metrics to MLflow", error)
        weights_logged = False
        try:
            weights_logged = await self._log_artifacts(tracker, run_id, job)
        except Exception as error:
            warnings += 1
            await self._warn(job_id, "could not upload the artifacts to MLflow", error)
        status: str | None = None
        try:
            status = await self._in_thread(tracker.end, run_id, request.state)
        except Exception as error:
            warnings += 1
            await self._warn(job_id, "could not close the MLflow run", error)
        model_name = model_name_for(str(job.get("framework", "")), str(job.get("model", "")))
        version: str | None = None
        if request.state == "SUCCEEDED" and weights_logged:
            try:
                version = await self._in_thread(
                    tracker.register, run_id, model_name, LOGGED_ARTIFACTS["weights"]
                )
                await self._backend.record_tracking(
                    job_id,
                    {"mlflow_run_id": run_id, "model_name": model_name, "model_version": version},
                )
            except Exception as error:
                warnings += 1
                await self._warn(job_id, "could not register the model version", error)
        return FinishTrackingResult(
            status=status,
            model_name=model_name if version is not None else None,
            model_version=version,
            warnings=warnings,
        )

    async def _sync_if_new_metrics(
        self, job_id: str, run_id: str, seen: int, cursor: SyncCursor | None
    ) -> tuple[int, SyncCursor | None]:
        """Log the epoch metrics that came after event `seen`; the newest seq seen and the
        run's cursor as it now is (None: not read yet).

        A round with nothing new costs one request to the backend and none to MLflow; a round
        with new epoch metrics or heartbeats carrying system metrics costs one write (the
        newest heartbeat's system metrics only: one point per metric and round, however many
        keep-alives came; the platform must not slow the training it tracks). The metrics
        carry their events' timestamps, so should a second writer (a retried activity,
        `finish_tracking`) log the same epochs, MLflow keeps each once.
        """
        tracker = self._tracker
        if tracker is None:
            return seen, cursor
        events, _ = await self._backend.events_after(job_id, seen, _EVENTS_PAGE)
        if not events:
            return seen, cursor
        newest = int(events[-1]["seq"])
        if cursor is None or len(events) == _EVENTS_PAGE:
            if (
                len(events) < _EVENTS_PAGE
                and not heartbeat_metrics(events)
                and not system_metrics(events)
            ):
                return newest, cursor
            cursor = await self._sync(job_id, run_id, cursor)
            return max(cursor.seq, newest), cursor
        # Events between the cursor and `seen` were keep-alives: these are all that is new.
        return newest, await self._log(tracker, run_id, events, cursor)

    async def _sync(self, job_id: str, run_id: str, cursor: SyncCursor | None = None) -> SyncCursor:
        """Log the metrics of every heartbeat after `cursor` (None: the run's own, read first),
        page by page; the cursor after them (its seq: the newest event read)."""
        tracker = self._tracker
        if tracker is None:
            return SyncCursor()
        if cursor is None:
            cursor = await self._in_thread(tracker.sync_cursor, run_id)
        while True:
            events, _ = await self._backend.events_after(job_id, cursor.seq, _EVENTS_PAGE)
            if not events:
                return cursor
            cursor = await self._log(tracker, run_id, events, cursor)
            if len(events) < _EVENTS_PAGE:
                return cursor

    async def _log(
        self, tracker: MlflowTracker, run_id: str, events: list[dict[str, Any]], cursor: SyncCursor
    ) -> SyncCursor:
        """Log the epoch metrics of `events` (those after `cursor`) and their newest system
        metrics with the cursor they move it to, in one write; the new cursor. Nothing is
        written when they hold neither."""
        epochs = heartbeat_metrics(events, after_epoch=cursor.epoch)
        moved = SyncCursor(
            seq=max(cursor.seq, int(events[-1]["seq"])),
            epoch=max([cursor.epoch, *(metric.step for metric in epochs)]),
        )
        metrics = epochs + system_metrics(events)
        if metrics:
            await self._in_thread(tracker.log_metrics, run_id, metrics, moved)
        return moved

    async def _log_final_metrics(
        self, tracker: MlflowTracker, run_id: str, job: dict[str, Any]
    ) -> None:
        result = job.get("result") or {}
        progress = job.get("progress") or {}
        step = int(progress.get("epoch") or 0)
        metrics = final_metrics(result.get("metrics") or {}, step, int(time.time() * 1000))
        if metrics:
            await self._in_thread(tracker.log_metrics, run_id, metrics, None)

    async def _log_artifacts(
        self, tracker: MlflowTracker, run_id: str, job: dict[str, Any]
    ) -> bool:
        """Upload the weights and result files; True if the weights are on the run."""
        artifacts: dict[str, str] = dict((job.get("result") or {}).get("artifacts") or {})
        await self._in_thread(
            tracker.set_tags,
            run_id,
            {f"trainyard.artifact.{name}": uri[:5000] for name, uri in artifacts.items()},
        )
        raw_output = job.get("attempt_output")
        output = None if raw_output is None else AttemptOutput.model_validate(raw_output)
        weights_logged = False
        for name, folder in LOGGED_ARTIFACTS.items():
            location = artifacts.get(name)
            if location is None:
                continue
            await self._in_thread(self._upload, tracker, run_id, location, folder, output)
            weights_logged = weights_logged or name == "weights"
        return weights_logged

    @staticmethod
    def _upload(
        tracker: MlflowTracker,
        run_id: str,
        location: str,
        folder: str,
        output: AttemptOutput | None,
    ) -> None:
        """A local file or folder (a Hugging Face model is a `save_pretrained` folder) is
        uploaded as is; an object-storage object or prefix is downloaded first (the MLflow
        server keeps its own copy, so the run outlives the job's storage prefix).

        Only from inside the attempt's output: the backend checked the name, this checks where
        it leads (symlinks resolved) before a byte is read; LocationRefused otherwise.
        """
        if output is None:
            raise LocationRefused(f"artifact {location}: the attempt recorded no output")
        confined(location, output)
        path = local_path(location)
        if path is not None:
            path = resolved_inside(path, Path(output.output_dir))
            if path.is_dir():
                tracker.log_folder(run_id, path, folder)
            elif path.is_file():
                tracker.log_file(run_id, path, folder)
            else:
                raise FileNotFoundError(f"artifact {location} is not on this worker")
            return
        store, key = object_store_for_uri(StorageSettings(), location)
        with tempfile.TemporaryDirectory(prefix="trainyard-artifact-") as scratch:
            if store.exists(key):
                path = Path(scratch) / Path(key).name
                store.download_file(key, path)
                tracker.log_file(run_id, path, folder)
                return
            prefix = key.rstrip("/") + "/"
            objects = store.list(prefix)
            if not objects:
                raise FileNotFoundError(f"artifact {location} is not in storage")
            local = Path(scratch) / Path(key.rstrip("/")).name
            for item in objects:
                target = local / item.key.removeprefix(prefix)
                target.parent.mkdir(parents=True, exist_ok=True)
                store.download_file(item.key, target)
            tracker.log_folder(run_id, local, folder)

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking MLflow call in a thread, heartbeating so a slow upload is not taken
        for a dead worker."""
        task = asyncio.ensure_future(asyncio.to_thread(function, *args))
        while True:
            done, _ = await asyncio.wait({task}, timeout=_HEARTBEAT_EVERY_S)
            if done:
                return task.result()
            activity.heartbeat()

    async def _warn(self, job_id: str, what: str, error: BaseException) -> None:
        message = f"{what}: {type(error).__name__}: {error}"[:2000]
        logger.warning("job %s: %s", job_id, message)
        try:
            await self._backend.post_event(job_id, WARNING_EVENT, message, {"error": message})
        except BackendError as post_error:
            logger.warning("job %s: could not post %s: %s", job_id, WARNING_EVENT, post_error)
