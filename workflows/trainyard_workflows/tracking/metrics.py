"""Turning a job's request and heartbeat events into MLflow params and metrics (pure code)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mlflow.entities import Metric, Param
from pydantic import ValidationError

from trainyard_workflows.system_metrics import SystemMetrics

# MLflow accepts only these characters in metric and param keys; Ultralytics names its
# metrics like `metrics/mAP50(B)`, which MLflow would refuse (the whole batch with it).
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
# MLflow's limit on a param value.
_MAX_PARAM_VALUE = 6000


def metric_key(name: str) -> str:
    """`metrics/mAP50(B)` -> `metrics/mAP50_B`: a key MLflow accepts, still readable."""
    key = _BAD_KEY_CHARS.sub("_", name).strip("_ ").strip("/") or "metric"
    # `..` segments would make MLflow refuse the key as a path that is not unique.
    return "/".join(part if part not in {".", ".."} else "_" for part in key.split("/"))


def _epoch_ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    return 0


# The event the workflow posts before it launches attempt 2, 3...: heartbeats after one are
# that attempt's (`attempt_launched` comes after the launch, maybe after a first heartbeat).
_NEXT_ATTEMPT_EVENT = "attempt_retried"


def heartbeat_metrics(events: Iterable[Mapping[str, Any]], after_epoch: int = 0) -> list[Metric]:
    """One metric per (key, epoch), keep-alives adding nothing.

    Within an attempt the epoch's last heartbeat wins. Across attempts the first attempt that
    reported the epoch wins: a resumed attempt reports its checkpoint's epoch once more, and
    when an earlier attempt's write of that epoch is still landing (its sync was cancelled
    mid-write) the run must get the same metric twice, which MLflow keeps once, not two
    different points of one step. Epochs up to `after_epoch` (already on the run) are skipped.

    The timestamp is the event's, so logging the same events twice logs identical metrics.
    """
    latest: dict[tuple[str, int], tuple[int, Metric]] = {}
    attempt = 0
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == _NEXT_ATTEMPT_EVENT and isinstance(data.get("attempt"), int):
            attempt = max(attempt, data["attempt"])
            continue
        if event.get("type") != "heartbeat":
            continue
        epoch = data.get("epoch")
        metrics = data.get("metrics") or {}
        if not isinstance(epoch, int) or not isinstance(metrics, Mapping) or epoch <= after_epoch:
            continue
        timestamp = _epoch_ms(event.get("created_at"))
        for name, value in metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if not math.isfinite(value):
                continue
            key = metric_key(str(name))
            reported = latest.get((key, epoch))
            if reported is None or reported[0] == attempt:
                latest[(key, epoch)] = (attempt, Metric(key, float(value), timestamp, epoch))
    return sorted((metric for _, metric in latest.values()), key=lambda m: (m.step, m.key))


def system_metrics(events: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The newest heartbeat's system metrics among `events` as `system/<name>` points
    (`system/gpu<i>_utilization_ratio`, `system/gpu<i>_memory_used_bytes` per GPU): one point
    per metric for the events of a sync round, however many heartbeats came, so a long run's
    keep-alives cost MLflow one write per round.

    The step is the heartbeat event's seq (increasing over the whole job, attempts included;
    epochs would stack many points on one step) and the timestamp the event's, so logging the
    same events twice logs identical points.
    """
    for event in reversed(list(events)):
        raw = (event.get("data") or {}).get("system")
        if event.get("type") != "heartbeat" or raw is None:
            continue
        try:
            system = SystemMetrics.model_validate(raw)
        except ValidationError:
            continue  # the backend validated it; an unreadable one is skipped, not fatal
        values: dict[str, float | None] = {
            "cpu_percent": system.cpu_percent,
            "ram_bytes": system.ram_bytes,
            "samples_per_s": system.samples_per_s,
            "data_wait_ratio": system.data_wait_ratio,
        }
        for gpu in system.gpus:
            values[f"gpu{gpu.index}_utilization_ratio"] = gpu.utilization_ratio
            values[f"gpu{gpu.index}_memory_used_bytes"] = gpu.memory_used_bytes
        timestamp, step = _epoch_ms(event.get("created_at")), int(event.get("seq") or 0)
        return [
            Metric(f"system/{name}", float(value), timestamp, step)
            for name, value in sorted(values.items())
            if value is not None
        ]
    return []


def final_metrics(metrics: Mapping[str, Any], step: int, timestamp_ms: int) -> list[Metric]:
    """The trainer's `done` metrics (its final evaluation, e.g. of the best weights) as
    `final/<key>` at the last epoch: under their own names they would add a second, different
    point to the last epoch of the per-epoch curves."""
    return [
        Metric(f"final/{metric_key(str(name))}", float(value), timestamp_ms, step)
        for name, value in sorted(metrics.items())
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]


def run_tags(job: Mapping[str, Any], attempt: int) -> dict[str, str]:
    """The run's `trainyard.*` tags: who submitted the job, in which project (its slug, from
    the internal API's read of the job), what it trains on, and the attempt that last began."""
    return {
        "trainyard.owner": str(job.get("owner", "")),
        "trainyard.project": str(job.get("project_slug", "")),
        "trainyard.framework": str(job.get("framework", "")),
        "trainyard.model": str(job.get("model", "")),
        "trainyard.dataset": str(job.get("dataset", "")),
        "trainyard.attempt": str(attempt),
    }


def run_params(job: Mapping[str, Any]) -> list[Param]:
    """The job's request: model, dataset, sizes and every hyperparameter the user set."""
    fields = ("framework", "model", "dataset", "dataset_uri", "task", "epochs", "imgsz", "batch")
    params = {name: job.get(name) for name in (*fields, "gpus")}
    hyperparameters = job.get("hyperparameters") or {}
    for name, value in dict(hyperparameters).items():
        params[f"hp.{name}"] = value
    return [
        Param(metric_key(name), _param_value(value))
        for name, value in sorted(params.items())
        if value is not None
    ]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:_MAX_PARAM_VALUE]
