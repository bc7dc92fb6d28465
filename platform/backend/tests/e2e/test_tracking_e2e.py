"""A tiny training through the embedded platform is tracked in its local MLflow server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset
from trainyard_workflows.tracking import metric_key

from .helpers import submit, wait_for

pytestmark = pytest.mark.xdist_group("e2e")


def _model_registered(job: dict[str, Any]) -> bool:
    return bool((job.get("tracking") or {}).get("model_version"))


def test_a_succeeded_job_is_an_mlflow_run_with_epoch_metrics_weights_and_a_model_version(
    api: httpx.Client,
    platform: EmbeddedPlatform,
    shapes: GeneratedDataset,
    trainer_python: Path,
) -> None:
    job = submit(api, shapes.uri, epochs=2, hyperparameters={"workers": 0, "lr0": 0.02})

    # The job turns SUCCEEDED first; its run is closed and registered right after.
    final = wait_for(api, job["id"], _model_registered)

    assert final["state"] == "SUCCEEDED"
    tracking = final["tracking"]
    mlflow_url = platform.config.mlflow_url
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    run = client.get_run(tracking["mlflow_run_id"])
    assert tracking["mlflow_run_url"] == (
        f"{mlflow_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    assert httpx.get(mlflow_url, timeout=10).status_code == 200
    assert run.info.run_name == job["id"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["trainyard.job_id"] == job["id"]
    assert run.data.tags["trainyard.owner"] == final["owner"]
    assert run.data.params["hp.lr0"] == "0.02"
    assert run.data.params["epochs"] == "2"
    losses = client.get_metric_history(run.info.run_id, "train/box_loss")
    assert sorted(m.step for m in losses) == [1, 2]
    final_keys = {f"final/{metric_key(name)}" for name in final["result"]["metrics"]}
    assert final_keys
    assert final_keys <= set(run.data.metrics)
    weights = client.list_artifacts(run.info.run_id, "weights")
    assert [a.path for a in weights] == ["weights/best.pt"]
    assert weights[0].file_size == Path(final["result"]["artifacts"]["weights"]).stat().st_size
    version = client.get_model_version(tracking["model_name"], tracking["model_version"])
    assert tracking["model_name"] == "trainyard-ultralytics-yolo11n"
    assert version.run_id == run.info.run_id
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert not [e for e in events if e["type"] == "tracking_warning"]
