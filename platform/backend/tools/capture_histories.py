"""Record TrainingWorkflow histories for the replay tests (workflows/tests/test_replay.py).

Runs one job per scenario through a throwaway embedded platform and writes each workflow's
history to workflows/tests/histories/<scenario>.json. Re-run it (`make histories`) only when a
workflow change is *meant* to be incompatible and is shipped with Temporal versioning;
otherwise the committed histories are what running workflows look like and must keep replaying.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from trainyard.cli.embedded import EmbeddedConfig, free_local_port, running_platform
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard_workflows.contracts import workflow_id_for

REPO_ROOT = Path(__file__).resolve().parents[3]
OUT_DIR = REPO_ROOT / "workflows" / "tests" / "histories"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _submit(api: httpx.Client, dataset_uri: str, epochs: int) -> str:
    body = {
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


def _trainer_pid(api: httpx.Client, job_id: str) -> int:
    events = api.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return int(next(e for e in events if e["type"] == "attempt_launched")["data"]["pid"])


async def _save_history(temporal_address: str, scenario: str, job_id: str) -> None:
    client = await Client.connect(temporal_address)
    handle = client.get_workflow_handle(workflow_id_for(job_id))
    # Wait for the workflow itself to close, not just the job.
    for _ in range(120):
        if (await handle.describe()).close_time is not None:
            break
        await asyncio.sleep(0.5)
    history = await handle.fetch_history()
    (OUT_DIR / f"{scenario}.json").write_text(history.to_json())
    print(f"{scenario}: {job_id} → {OUT_DIR / (scenario + '.json')}")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trainyard-histories-") as tmp:
        root = Path(tmp)
        shapes = make_shapes(
            root / "shapes", ShapesSpec(train_images=8, val_images=4, image_size=64)
        )
        broken = root / "broken"
        (broken / "images" / "train").mkdir(parents=True)
        (broken / "images" / "val").mkdir(parents=True)
        (broken / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {0: a}\n")
        config = EmbeddedConfig(
            data_dir=root / "platform",
            api_port=free_local_port(),
            temporal_port=free_local_port(),
            temporal_ui_port=free_local_port(),
            mlflow_port=free_local_port(),
        )
        with running_platform(config), httpx.Client(base_url=config.api_url, timeout=30) as api:
            jobs: dict[str, str] = {}
            jobs["succeeded"] = _submit(api, shapes.uri, epochs=1)
            _wait(api, jobs["succeeded"], TERMINAL)
            jobs["validation_failed"] = _submit(api, broken.as_uri(), epochs=1)
            _wait(api, jobs["validation_failed"], TERMINAL)
            jobs["cancelled"] = _submit(api, shapes.uri, epochs=200)
            _wait(api, jobs["cancelled"], {"RUNNING"})
            api.post(f"/v1/jobs/{jobs['cancelled']}/cancel").raise_for_status()
            _wait(api, jobs["cancelled"], TERMINAL)
            jobs["trainer_killed"] = _submit(api, shapes.uri, epochs=200)
            _wait(api, jobs["trainer_killed"], {"RUNNING"})
            os.kill(_trainer_pid(api, jobs["trainer_killed"]), signal.SIGKILL)
            _wait(api, jobs["trainer_killed"], TERMINAL)
            for scenario, job_id in jobs.items():
                asyncio.run(_save_history(config.temporal_address, scenario, job_id))


if __name__ == "__main__":
    main()
