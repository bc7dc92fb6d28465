"""End to end with object storage that cannot be reached: the attempt fails naming storage
(the successful path — dataset from s3://, checkpoints and model to s3:// — is in
test_resume.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import run_trainer
from trainer_kit.testing.s3 import S3_SECRET, S3Endpoint, closed_port_url


@pytest.mark.parametrize("what", ["dataset", "output"])
def test_unreachable_storage_fails_the_attempt_naming_storage(
    callback_server: CallbackServer, image_dataset: Path, s3: S3Endpoint, tmp_path: Path, what: str
) -> None:
    overrides = {**s3.env(), "AWS_ENDPOINT_URL": closed_port_url()}
    if what == "dataset":
        overrides["TRAINYARD_DATASET_URI"] = "s3://bucket/datasets/alice/ds_1"
    else:
        overrides["TRAINYARD_OUTPUT_URI"] = "s3://bucket/jobs/job_test/attempt-1"
    env = trainer_env(
        callback_server.url, image_dataset, tmp_path / "out", tmp_path / "home", **overrides
    )

    result = run_trainer(env, tmp_path, timeout=180)

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
    heartbeats = callback_server.of("heartbeat")
    if what == "dataset":  # failed before any epoch: no GPU time spent on it
        assert all(c.body["epoch"] == 0 for c in heartbeats)
    else:  # the first checkpoint could not be published: no epoch is claimed
        assert all(not c.body["metrics"] for c in heartbeats)
        assert not [c for c in callback_server.of("event") if c.body["type"] == "checkpoint_saved"]
