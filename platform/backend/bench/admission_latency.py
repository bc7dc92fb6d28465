"""Benchmark: from a slot freeing to the next trainer launched, on the embedded platform.

`trainyard up` as a user starts it, with one CPU slot (TRAINYARD_CPU_RUN_SLOTS=1) and a queue
of tiny jobs. Each round cancels the job holding the slot as soon as its trainer is launched;
the next job in the queue is admitted by the API's own pass and signalled. The figure per
round is the time from the cancelled job's terminal `state` event to the next job's `attempt`
event (the worker asks for the attempt's token right before it starts the trainer process),
both stamped by the API's clock. Target: p99 <= 1 s.

Run from platform/backend: `python -m bench.admission_latency [--jobs 16]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from trainyard.cli.embedded import EmbeddedConfig, running_platform
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _submit(api: httpx.Client, dataset: str) -> str:
    body = {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset,
        "epochs": 1000,  # never finishes on its own: each is cancelled once launched
        "imgsz": 64,
        "batch": 4,
        "hyperparameters": {"workers": 0},
    }
    response = api.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def _events(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return items


def _event_at(api: httpx.Client, job_id: str, wanted: Any, timeout_s: float = 120) -> datetime:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in _events(api, job_id):
            if wanted(event):
                return datetime.fromisoformat(event["created_at"])
        time.sleep(0.05)
    raise TimeoutError(f"{job_id}: no such event within {timeout_s:g} s")


def _launched(event: dict[str, Any]) -> bool:
    return bool(event["type"] == "attempt")


def _queued(event: dict[str, Any]) -> bool:
    return bool(event["type"] == "state" and event["data"]["to"] == "QUEUED")


def _ended(event: dict[str, Any]) -> bool:
    return bool(event["type"] == "state" and event["data"]["to"] in TERMINAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=16, help="queued jobs (rounds + 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainyard-admission-bench-") as scratch:
        root = Path(scratch)
        shapes = make_shapes(root / "shapes", ShapesSpec(train_images=8, val_images=4))
        config = EmbeddedConfig.on_free_ports(
            root / "platform",
            extra_env={
                "TRAINYARD_CPU_RUN_SLOTS": "1",
                "TRAINYARD_DATASET_ROOTS": json.dumps([str(root)]),
            },
        )
        gaps: list[float] = []
        with running_platform(config), httpx.Client(base_url=config.api_url, timeout=30) as api:
            jobs = [_submit(api, shapes.uri) for _ in range(args.jobs)]
            _event_at(api, jobs[0], _launched)
            # All validated and waiting, so the queue's order is the submission order.
            for job_id in jobs[1:]:
                _event_at(api, job_id, _queued, timeout_s=600)
            for current, following in itertools.pairwise(jobs):
                cancel = api.post(f"/v1/jobs/{current}/cancel")
                if cancel.status_code != 202:
                    job = api.get(f"/v1/jobs/{current}").json()
                    raise RuntimeError(f"{current}: {job['state']} ({job['reason']})")
                freed = _event_at(api, current, _ended)
                launched = _event_at(api, following, _launched)
                gaps.append((launched - freed).total_seconds())
            api.post(f"/v1/jobs/{jobs[-1]}/cancel").raise_for_status()
    gaps.sort()
    p99 = gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))]
    met = "met" if p99 <= 1.0 else "MISSED"
    print(f"admission: slot freed -> next trainer launched, {len(gaps)} rounds, one CPU slot")
    print(
        f"  p50 {statistics.median(gaps) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {gaps[-1] * 1000:.0f} ms (p99 <= 1000 ms: {met})"
    )


if __name__ == "__main__":
    main()
