"""Record TrainingWorkflow histories for the replay tests (workflows/tests/test_replay.py).

Runs one job per scenario through a throwaway embedded platform and writes each workflow's
history to workflows/tests/histories/<scenario>.json. Re-run it (`make histories`) only when a
workflow change is *meant* to be incompatible and is shipped with Temporal versioning;
otherwise the committed histories are what running workflows look like and must keep replaying.
A new `workflow.patched` branch gets a scenario here that takes it, recorded alone
(`python platform/backend/tools/capture_histories.py <scenario>...`) so the histories of
older code stay as they were.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from trainyard.cli.embedded import EmbeddedConfig, running_platform
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard_workflows.contracts import workflow_id_for

REPO_ROOT = Path(__file__).resolve().parents[3]
OUT_DIR = REPO_ROOT / "workflows" / "tests" / "histories"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclass(frozen=True)
class Datasets:
    shapes: str  # a valid tiny detection dataset
    broken: str  # fails validation (no images)


def _submit(api: httpx.Client, dataset_uri: str, epochs: int, priority: str = "normal") -> str:
    body = {
        "priority": priority,
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset_uri,
        "epochs": epochs,
        "imgsz": 64,
        "batch": 4,
        "hyperparameters": {"workers": 0},
    }
    response = api.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def _wait(api: httpx.Client, job_id: str, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"{job_id} never reached {states}")


def _events(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return items


def _trainer_pid(api: httpx.Client, job_id: str, attempt: int = 1) -> int:
    launched = (
        e
        for e in _events(api, job_id)
        if e["type"] == "attempt_launched" and e["data"]["attempt"] == attempt
    )
    return int(next(launched)["data"]["pid"])


def _wait_for_checkpoint(api: httpx.Client, job_id: str) -> None:
    """Until attempt 1 saved a checkpoint, so the next attempt has one to resume from."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(e["type"] == "checkpoint_saved" for e in _events(api, job_id)):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{job_id} saved no checkpoint")


def _succeeded(api: httpx.Client, data: Datasets) -> str:
    job_id = _submit(api, data.shapes, epochs=1)
    _wait(api, job_id, TERMINAL)
    return job_id


def _validation_failed(api: httpx.Client, data: Datasets) -> str:
    job_id = _submit(api, data.broken, epochs=1)
    _wait(api, job_id, TERMINAL)
    return job_id


def _cancelled(api: httpx.Client, data: Datasets) -> str:
    job_id = _submit(api, data.shapes, epochs=200)
    _wait(api, job_id, {"RUNNING"})
    api.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
    _wait(api, job_id, TERMINAL)
    return job_id


def _trainer_killed(api: httpx.Client, data: Datasets) -> str:
    # Every attempt is killed: since retries (RETRY_PATCH) the job fails only once its
    # attempts are used up.
    job_id = _submit(api, data.shapes, epochs=200)
    attempt = 1
    while True:
        job = _wait(api, job_id, {"RUNNING", *TERMINAL})
        if job["state"] in TERMINAL:
            return job_id
        if job["attempt"] == attempt:
            os.kill(_trainer_pid(api, job_id, attempt), signal.SIGKILL)
            attempt += 1
        time.sleep(0.5)


def _resumed(stop: signal.Signals) -> Callable[[httpx.Client, Datasets], str]:
    """Attempt 1 stopped by `stop` after its first checkpoint; attempt 2 resumes to the end."""

    def scenario(api: httpx.Client, data: Datasets) -> str:
        job_id = _submit(api, data.shapes, epochs=3)
        _wait_for_checkpoint(api, job_id)
        os.kill(_trainer_pid(api, job_id), stop)
        job = _wait(api, job_id, TERMINAL)
        if (job["state"], job["attempt"]) != ("SUCCEEDED", 2):
            raise RuntimeError(f"{job_id} should have resumed to success: {job}")
        return job_id

    return scenario


def _queued(api: httpx.Client, data: Datasets) -> str:
    """A job that waits QUEUED behind another (the platform runs one CPU job at a time here),
    is woken by the `admitted` signal when the first ends, and succeeds: ADMISSION_PATCH."""
    first = _submit(api, data.shapes, epochs=2)
    _wait(api, first, {"RUNNING"})
    job_id = _submit(api, data.shapes, epochs=1)
    _wait(api, job_id, {"QUEUED"})
    if _wait(api, job_id, TERMINAL)["state"] != "SUCCEEDED":
        raise RuntimeError(f"{job_id} should have waited, then succeeded")
    return job_id


def _preempted(api: httpx.Client, data: Datasets) -> str:
    """A low-priority job gives way to a high one after its first checkpoint, waits QUEUED,
    and resumes to success: PREEMPTION_PATCH."""
    job_id = _submit(api, data.shapes, epochs=3, priority="low")
    _wait_for_checkpoint(api, job_id)
    urgent = _submit(api, data.shapes, epochs=1, priority="high")
    job = _wait(api, job_id, TERMINAL)
    if (job["state"], job["attempt"]) != ("SUCCEEDED", 2):
        raise RuntimeError(f"{job_id} should have given way to {urgent}, then resumed: {job}")
    return job_id


SCENARIOS: dict[str, Callable[[httpx.Client, Datasets], str]] = {
    "succeeded": _succeeded,
    "validation_failed": _validation_failed,
    "cancelled": _cancelled,
    "trainer_killed": _trainer_killed,
    # A crash (SIGKILL) is a failed attempt: RETRY_PATCH's branch.
    "retried": _resumed(signal.SIGKILL),
    # A SIGTERM nobody on the platform sent (a preempted pod): INTERRUPT_PATCH's branch.
    "interrupted": _resumed(signal.SIGTERM),
    # Admission: the second of two jobs on one CPU slot waits, then starts.
    "queued": _queued,
    # Preemption: a low-priority run gives way to a high one, then resumes.
    "preempted": _preempted,
}


async def _save_history(temporal_address: str, out: Path, scenario: str, job_id: str) -> None:
    client = await Client.connect(temporal_address)
    handle = client.get_workflow_handle(workflow_id_for(job_id))
    # Wait for the workflow itself to close, not just the job.
    for _ in range(120):
        if (await handle.describe()).close_time is not None:
            break
        await asyncio.sleep(0.5)
    history = await handle.fetch_history()
    (out / f"{scenario}.json").write_text(history.to_json())
    print(f"{scenario}: {job_id} → {out / (scenario + '.json')}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"which to record (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder to write to")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


def main() -> None:
    args = _parse_args()
    scenarios: list[str] = args.scenarios or list(SCENARIOS)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trainyard-histories-") as tmp:
        root = Path(tmp)
        shapes = make_shapes(
            root / "shapes", ShapesSpec(train_images=8, val_images=4, image_size=64)
        )
        broken = root / "broken"
        (broken / "images" / "train").mkdir(parents=True)
        (broken / "images" / "val").mkdir(parents=True)
        (broken / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {0: a}\n")
        data = Datasets(shapes=shapes.uri, broken=broken.as_uri())
        config = EmbeddedConfig.on_free_ports(
            root / "platform",
            # One CPU training at a time, so `queued` queues (the others run one job each).
            # Its datasets are made here, beside the platform's data folder.
            extra_env={
                "TRAINYARD_CPU_RUN_SLOTS": "1",
                "TRAINYARD_DATASET_ROOTS": json.dumps([str(root)]),
            },
        )
        with running_platform(config), httpx.Client(base_url=config.api_url, timeout=30) as api:
            jobs = {scenario: SCENARIOS[scenario](api, data) for scenario in scenarios}
            for scenario, job_id in jobs.items():
                asyncio.run(_save_history(config.temporal_address, out, scenario, job_id))


if __name__ == "__main__":
    main()
