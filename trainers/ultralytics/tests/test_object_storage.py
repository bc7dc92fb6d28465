"""End to end with object storage: the real entrypoint reads its dataset from s3:// and publishes
checkpoints and weights to s3://, against a real S3 HTTP endpoint (moto in server mode)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import make_dataset, trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import TOKEN, run_trainer
from trainer_kit.testing.s3 import S3_SECRET, S3Endpoint, closed_port_url


def _load_with_ultralytics(weights: Path, home: Path) -> str:
    """Load the weights with Ultralytics in a clean process; returns ``task:<n classes>``."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(home),
        "YOLO_CONFIG_DIR": str(home / "yolo"),
        "YOLO_OFFLINE": "1",
        "MPLCONFIGDIR": str(home / "mpl"),
    }
    code = (
        "import sys; from ultralytics import YOLO; m = YOLO(sys.argv[1]); "
        "print(f'{m.task}:{len(m.names)}')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(weights)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_dataset_read_from_s3_and_checkpoints_and_weights_published_to_s3(
    callback_server: CallbackServer, s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    # The only copy of the dataset is the one in storage (its data.yaml names a local path
    # that is gone, as for a dataset uploaded from another machine).
    local = make_dataset(tmp_path / "upload")
    s3.upload_folder(local, bucket, "datasets/alice/ds_1")
    shutil.rmtree(local)
    out, home = tmp_path / "out", tmp_path / "home"
    output_uri = f"s3://{bucket}/jobs/job_test/attempt-1"
    env = trainer_env(
        callback_server.url,
        local,
        out,
        home,
        TRAINYARD_DATASET_URI=f"s3://{bucket}/datasets/alice/ds_1",
        TRAINYARD_OUTPUT_URI=output_uri,
        **s3.env(),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "dataset s3://" in output  # progress in the log
    assert "to download" in output
    assert (out / ".trainer" / "dataset" / "images" / "train").is_dir()

    calls = callback_server.snapshot()
    checkpoints = [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    assert all(c["path"] == f"{output_uri}/run/weights/last.pt" for c in checkpoints)
    assert checkpoints[0]["best"] == f"{output_uri}/run/weights/best.pt"

    done = calls[-1].body
    assert (calls[-1].kind, done["status"]) == ("done", "succeeded")
    assert done["artifacts"] == {
        "weights": f"{output_uri}/run/weights/best.pt",
        "last": f"{output_uri}/run/weights/last.pt",
        "results": f"{output_uri}/run/results.csv",
        "run_dir": f"{output_uri}/run",
    }
    keys = s3.keys(bucket)
    job_keys = [k for k in keys if k.startswith("jobs/")]
    for name in ("run/weights/best.pt", "run/weights/last.pt", "run/results.csv", "run/args.yaml"):
        assert f"jobs/job_test/attempt-1/{name}" in job_keys, name
    assert not [k for k in keys if k.endswith(".partial")], "temporary keys left behind"
    # What is in storage is the final (optimizer-stripped) file, byte for byte.
    best = tmp_path / "best.pt"
    s3.client().download_file(bucket, "jobs/job_test/attempt-1/run/weights/best.pt", str(best))
    assert best.read_bytes() == (out / "run" / "weights" / "best.pt").read_bytes()
    assert _load_with_ultralytics(best, tmp_path / "loader") == "detect:2"

    everything_sent = output + json.dumps([c.body for c in calls])
    assert S3_SECRET not in everything_sent
    assert TOKEN not in output


@pytest.mark.parametrize("what", ["dataset", "output"])
def test_unreachable_storage_fails_the_attempt_naming_storage(
    callback_server: CallbackServer, dataset: Path, s3: S3Endpoint, tmp_path: Path, what: str
) -> None:
    overrides = {**s3.env(), "AWS_ENDPOINT_URL": closed_port_url()}
    if what == "dataset":
        overrides["TRAINYARD_DATASET_URI"] = "s3://bucket/datasets/alice/ds_1"
    else:
        overrides["TRAINYARD_OUTPUT_URI"] = "s3://bucket/jobs/job_test/attempt-1"
    env = trainer_env(
        callback_server.url, dataset, tmp_path / "out", tmp_path / "home", **overrides
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    reason = done[0].body["reason"]
    assert reason.startswith("StorageError: storage: ")
    expected = "listing s3://bucket/datasets/alice/ds_1" if what == "dataset" else "upload of"
    assert expected in reason
    assert done[0].body["artifacts"] == {}  # nothing reached storage, no local paths either
    assert S3_SECRET not in output + reason
    if what == "dataset":  # failed before any epoch: no GPU time spent on it
        assert all(c.body["epoch"] == 0 for c in callback_server.of("heartbeat"))
