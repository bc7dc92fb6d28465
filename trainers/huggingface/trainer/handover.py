"""The files through which the training ranks of a distributed run and the launching process
talk (``<output>/.trainer/ddp/``; the same protocol as the timm trainer's).

* ``prepared.json`` — what the launcher readied before starting the ranks (dataset and model
  folders, the restored checkpoint): written once, read by every rank.
* ``progress.json`` — after each epoch rank 0 writes the epoch, its metrics and the local path
  of its checkpoint (atomically), then waits until the launcher has announced the epoch exactly
  as a single process would (upload, ``checkpoint_saved``, heartbeat) and says so in
  ``ack.json`` — so every epoch is announced once, with the checkpoint of that very epoch.
* ``outcome-<rank>.json`` — each rank's end before it exits: ``succeeded`` (with rank 0's final
  metrics), ``cancelled`` (SIGTERM), ``stopped`` (another rank stopped the run) or ``failed``
  (with the rank's own ``<type>: <message>`` and when it failed, so the first failure is the
  one reported).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import write_text_atomically
from trainer_kit.callbacks import clean_metrics
from trainer_kit.control import StopFlag
from trainer_kit.output_dir import trainer_dir

log = logging.getLogger("trainyard.trainer.handover")

ACK_TIMEOUT_S = 600.0

# What the launcher does with an epoch: (completed epoch, its metrics, its local checkpoint).
EpochSink = Callable[[int, Mapping[str, float], Path], None]


def ddp_dir(output_dir: Path) -> Path:
    return trainer_dir(output_dir) / "ddp"


def reset(folder: Path) -> None:
    """An empty hand-over folder (an earlier run's files would read as this one's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()


def write_prepared(folder: Path, body: Mapping[str, Any]) -> None:
    write_text_atomically(folder / "prepared.json", json.dumps(body))


def read_prepared(folder: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((folder / "prepared.json").read_text(encoding="utf-8"))
    return body


def _acknowledged(folder: Path) -> int:
    try:
        return int(json.loads((folder / "ack.json").read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def write_progress(
    folder: Path,
    stop: StopFlag,
    epoch: int,
    metrics: Mapping[str, float],
    checkpoint: str,
    *,
    timeout_s: float = ACK_TIMEOUT_S,
) -> None:
    """Rank 0's epoch sink: hand the epoch over, then wait until the launcher has announced it
    (or a stop is requested, or ``timeout_s`` passed)."""
    body = {"epoch": epoch, "metrics": dict(metrics), "checkpoint": checkpoint}
    write_text_atomically(folder / "progress.json", json.dumps(body))
    deadline = time.monotonic() + timeout_s
    while _acknowledged(folder) < epoch and not stop.stop_requested:
        if time.monotonic() > deadline:
            log.warning("epoch %d not acknowledged in %.0f s; going on", epoch, timeout_s)
            return
        time.sleep(0.05)


class ProgressFollower:
    """Reads rank 0's ``progress.json`` and hands each new epoch to ``sink`` once; acknowledges
    it when the sink returned."""

    def __init__(self, folder: Path, sink: EpochSink, announced: int) -> None:
        self._folder = folder
        self._sink = sink
        self._announced = announced
        self._lock = threading.Lock()  # polled by the keep-alive thread and, last, by the launcher

    def poll(self) -> None:
        with self._lock:
            try:
                body = json.loads((self._folder / "progress.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return
            epoch = int(body["epoch"])
            if epoch <= self._announced:
                return
            self._announced = epoch
            self._sink(epoch, clean_metrics(body.get("metrics")), Path(body["checkpoint"]))
            write_text_atomically(self._folder / "ack.json", json.dumps({"epoch": epoch}))


def write_outcome(folder: Path, rank: int, status: str, **fields: Any) -> None:
    body = {"status": status, "at": time.time(), **fields}
    write_text_atomically(folder / f"outcome-{rank}.json", json.dumps(body))


def read_outcomes(folder: Path, nproc: int) -> dict[int, dict[str, Any]]:
    outcomes: dict[int, dict[str, Any]] = {}
    for rank in range(nproc):
        try:
            text = (folder / f"outcome-{rank}.json").read_text(encoding="utf-8")
            outcomes[rank] = json.loads(text)
        except (OSError, ValueError):
            continue
    return outcomes
