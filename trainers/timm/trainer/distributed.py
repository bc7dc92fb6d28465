"""Data-parallel training over several processes: the trainer re-launches itself with
``torch.distributed.run`` (``torchrun --standalone --nproc-per-node <n> -m trainer.worker``).

The launching process (the one the platform started) keeps the attempt's whole conversation
with the backend — ``trainer_started``, heartbeats, ``checkpoint_saved``, ``done`` — and the
uploads; the workers never talk to the backend nor storage, and are given no secret (not the
token, not the storage keys: `trainer_kit.workers.worker_env`):

* it writes the `TrainJob` to ``<output>/.trainer/ddp/job.json`` and starts torchrun with
  ``nproc`` workers; each worker (trainer/worker.py) joins the process group (NCCL on CUDA,
  gloo on CPU), trains its share and, on rank 0, saves checkpoints and ``results.csv``;
* after each epoch rank 0 writes ``progress.json`` (epoch, metrics, whether it was the best)
  and waits until this process has announced the epoch exactly as a single process would
  (publish, ``checkpoint_saved``, heartbeat) and says so in ``ack.json`` — so every epoch is
  announced, with the checkpoint of that very epoch (the keep-alive thread polls every 0.2 s);
* each worker writes ``outcome-<rank>.json`` (succeeded + final metrics, cancelled, or failed +
  reason) before it exits; here they become the attempt's result;
* SIGTERM (or a refused callback, or a failed upload) makes this process send SIGTERM to
  torchrun, which forwards it to the workers; they agree to stop at the next batch boundary.
  A torchrun that has not ended 60 s later is killed.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import write_text_atomically
from trainer_kit.callbacks import clean_metrics
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.workers import worker_env

from trainer.job import EpochReport, EpochSink, TrainJob
from trainer.progress import ProgressReporter

log = logging.getLogger("trainyard.trainer.distributed")

_KILL_AFTER_S = 60.0
ACK_TIMEOUT_S = 600.0


class WorkerError(RuntimeError):
    """The workers failed; ``reason`` is the failing worker's own ``<type>: <message>``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def ddp_dir(private: Path) -> Path:
    return private / "ddp"


def progress_path(folder: Path) -> Path:
    return folder / "progress.json"


def outcome_path(folder: Path, rank: int) -> Path:
    return folder / f"outcome-{rank}.json"


def ack_path(folder: Path) -> Path:
    return folder / "ack.json"


def _acknowledged(folder: Path) -> int:
    try:
        return int(json.loads(ack_path(folder).read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def write_progress(
    folder: Path, report: EpochReport, stop: StopFlag, timeout_s: float = ACK_TIMEOUT_S
) -> None:
    """Rank 0's epoch sink: tell the launching process about the epoch (atomically), then wait
    until it has announced it (or a stop is requested, or ``timeout_s`` passed)."""
    body = {
        "epoch": report.epoch,
        "epochs": report.epochs,
        "metrics": report.metrics,
        "last": str(report.last),
        "best": str(report.best) if report.best is not None else None,
    }
    write_text_atomically(progress_path(folder), json.dumps(body))
    deadline = time.monotonic() + timeout_s
    while _acknowledged(folder) < report.epoch and not stop.stop_requested:
        if time.monotonic() > deadline:
            log.warning("epoch %d not acknowledged in %.0f s; going on", report.epoch, timeout_s)
            return
        time.sleep(0.05)


def write_outcome(folder: Path, rank: int, body: dict[str, Any]) -> None:
    write_text_atomically(outcome_path(folder, rank), json.dumps(body))


class ProgressFollower:
    """Reads rank 0's ``progress.json`` and hands each new epoch to the attempt's sink."""

    def __init__(self, folder: Path, sink: EpochSink, announced: int) -> None:
        self._folder = folder
        self._path = progress_path(folder)
        self._sink = sink
        self._announced = announced
        self._lock = threading.Lock()

    def poll(self) -> None:
        with self._lock:
            try:
                body = json.loads(self._path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return
            epoch = int(body["epoch"])
            if epoch <= self._announced:
                return
            self._announced = epoch
            best = body.get("best")
            self._sink(
                EpochReport(
                    epoch=epoch,
                    epochs=int(body["epochs"]),
                    metrics=clean_metrics(body.get("metrics")),
                    last=Path(body["last"]),
                    best=Path(best) if best else None,
                )
            )
            write_text_atomically(ack_path(self._folder), json.dumps({"epoch": epoch}))


def torchrun_command(nproc: int, job_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--module",
        "trainer.worker",
        str(job_file),
    ]


def _stop_workers(proc: subprocess.Popen[bytes], stop: StopFlag, halt: threading.Event) -> None:
    """Forward a stop request to torchrun (SIGTERM), then kill it if it lingers."""
    while not halt.wait(0.2):
        if stop.stop_requested:
            log.warning("stopping the training processes")
            proc.send_signal(signal.SIGTERM)
            if not halt.wait(_KILL_AFTER_S) and proc.poll() is None:
                log.error("torchrun still running %.0f s after SIGTERM: killing it", _KILL_AFTER_S)
                proc.kill()
            return


def _read_outcomes(folder: Path, nproc: int) -> dict[int, dict[str, Any]]:
    outcomes: dict[int, dict[str, Any]] = {}
    for rank in range(nproc):
        try:
            outcomes[rank] = json.loads(outcome_path(folder, rank).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return outcomes


def run_distributed(
    job: TrainJob,
    nproc: int,
    *,
    private: Path,
    reporter: ProgressReporter,
    sink: EpochSink,
    stop: StopFlag,
) -> dict[str, float]:
    """Train ``job`` in ``nproc`` torchrun workers; returns rank 0's final metrics. Raises
    `TrainingCancelled` when stopped, `WorkerError` when the workers failed."""
    folder = ddp_dir(private)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    job_file = folder / "job.json"
    write_text_atomically(job_file, job.model_dump_json())
    follower = ProgressFollower(folder, sink, announced=reporter.epoch)
    command = torchrun_command(nproc, job_file)
    log.info("launching %d training processes: %s", nproc, " ".join(command))
    # The workers never call the backend nor storage: they get no secret (trainer_kit/workers.py).
    proc = subprocess.Popen(command, env=worker_env(PYTHONUNBUFFERED="1"))
    halt = threading.Event()
    stopper = threading.Thread(
        target=_stop_workers, args=(proc, stop, halt), name="ddp-stopper", daemon=True
    )
    stopper.start()
    reporter.follow(follower.poll)
    try:
        returncode = proc.wait()
    finally:
        reporter.follow(None)
        halt.set()
        stopper.join()
        if proc.poll() is None:  # interrupted while waiting
            proc.kill()
            proc.wait()
    follower.poll()  # the last epoch, if the keep-alive thread had not seen it yet
    stop.check()
    outcomes = _read_outcomes(folder, nproc)
    log.info("training processes ended with code %s", returncode)
    for rank in sorted(outcomes):
        if outcomes[rank].get("status") == "failed":
            raise WorkerError(str(outcomes[rank].get("reason") or "training process failed"))
    main = outcomes.get(0, {})
    if main.get("status") == "succeeded" and returncode == 0:
        return clean_metrics(main.get("metrics"))
    if main.get("status") == "cancelled":
        raise TrainingCancelled("training processes stopped")
    raise WorkerError(
        f"RuntimeError: distributed training ended with code {returncode} without a result "
        "(see the trainer log)"
    )
