"""End to end with object storage: the real entrypoint reads its dataset from s3:// and publishes
checkpoints and weights to s3://, against a real S3 HTTP endpoint (moto in server mode)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from conftest import make_dataset, trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import TOKEN, run_trainer
from trainer_kit.testing.s3 import S3_SECRET, S3Endpoint


def test_dataset_read_from_s3_and_checkpoints_and_weights_published_to_s3(
    callback_server: CallbackServer, s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    # The only copy of the dataset is the one in storage.
    local = make_dataset(tmp_path / "upload")
    s3.upload_folder(local, bucket, "datasets/alice/my set")
    shutil.rmtree(local)
    out, home = tmp_path / "out", tmp_path / "home"
    output_uri = f"s3://{bucket}/jobs/job_test/attempt-1"
    env = trainer_env(
        callback_server.url,
        local,
        out,
        home,
        TRAINYARD_DATASET_URI=f"s3://{bucket}/datasets/alice/my%20set",
        TRAINYARD_OUTPUT_URI=output_uri,
        **s3.env(),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "dataset s3://" in output  # progress in the log
    assert "to download" in output
    assert (out / ".trainer" / "dataset" / "train" / "circle").is_dir()

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
    assert job_keys == [
        f"jobs/job_test/attempt-1/{name}"
        for name in ("run/results.csv", "run/weights/best.pt", "run/weights/last.pt")
    ]
    assert not [k for k in keys if k.endswith(".partial")], "temporary keys left behind"
    for name in ("run/weights/best.pt", "run/weights/last.pt", "run/results.csv"):
        copy = tmp_path / "copy"
        s3.client().download_file(bucket, f"jobs/job_test/attempt-1/{name}", str(copy))
        assert copy.read_bytes() == (out / name).read_bytes(), name

    everything_sent = output + json.dumps([c.body for c in calls])
    assert S3_SECRET not in everything_sent
    assert TOKEN not in output
