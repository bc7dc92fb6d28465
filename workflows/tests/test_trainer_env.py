"""The trainer's environment: storage URIs and AWS_* credentials only when storage is S3."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from trainyard_workflows.activities.trainer_env import trainer_env
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.internal_api import Checkpoint
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.base import TRAINER_ENV_VARS, TRAINER_STORAGE_ENV_VARS
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.storage import StorageSettings
from trainyard_workflows.telemetry.logs import LogFormat

SECRET = "s3-secret-access-key-never-logged"
RESUME_VARS = {"TRAINYARD_RESUME_FROM", "TRAINYARD_RESUME_SIZE", "TRAINYARD_RESUME_SHA256"}
AWS_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}
TRAINING = TrainingInput(
    job_id="job_ab12",
    framework="ultralytics",
    model="yolo11n.yaml",
    dataset_uri="s3://bucket/datasets/alice/ds_1",
    task="detect",
    epochs=2,
    imgsz=64,
    batch=4,
    gpus=0,
)


def _env(tmp_path: Path, storage: StorageSettings | None) -> dict[str, str]:
    return trainer_env(
        TRAINING,
        attempt=2,
        callback_url="http://127.0.0.1:8000",
        callback_token="callback-token",
        output_dir=tmp_path / "attempt-2",
        keepalive_s=15,
        storage=storage,
    )


def _s3_storage(tmp_path: Path, url: str = "s3://bucket/pre") -> StorageSettings:
    return StorageSettings(
        data_dir=tmp_path,
        storage_url=url,
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-west-1",
        s3_access_key_id="key-id",
        s3_secret_access_key=SecretStr(SECRET),
    )


def test_s3_storage_hands_the_trainer_its_output_uri_and_the_aws_credentials(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, _s3_storage(tmp_path))

    assert env["TRAINYARD_OUTPUT_URI"] == "s3://bucket/pre/jobs/job_ab12/attempt-2"
    assert env["TRAINYARD_DATASET_URI"] == "s3://bucket/datasets/alice/ds_1"
    assert {name: env[name] for name in AWS_VARS} == {
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert set(env) <= TRAINER_ENV_VARS | TRAINER_STORAGE_ENV_VARS


def test_a_bucket_without_prefix_puts_jobs_at_its_root(tmp_path: Path) -> None:
    env = _env(tmp_path, _s3_storage(tmp_path, "s3://bucket"))
    assert env["TRAINYARD_OUTPUT_URI"] == "s3://bucket/jobs/job_ab12/attempt-2"


@pytest.mark.parametrize("kind", ["file storage", "no storage settings"])
def test_file_storage_hands_the_trainer_no_output_uri_and_no_credentials(
    tmp_path: Path, kind: str
) -> None:
    storage = StorageSettings(data_dir=tmp_path) if kind == "file storage" else None
    env = _env(tmp_path, storage)

    assert "TRAINYARD_OUTPUT_URI" not in env
    assert not {name for name in env if name.startswith("AWS_")}
    assert set(env) == TRAINER_ENV_VARS - {"TRAINYARD_OUTPUT_URI", *RESUME_VARS}


def test_launch_request_repr_shows_no_secret(tmp_path: Path) -> None:
    env = _env(tmp_path, _s3_storage(tmp_path))
    request = LaunchRequest(
        job_id="job_ab12", attempt=2, framework="ultralytics", output_dir=str(tmp_path), env=env
    )
    assert SECRET not in repr(request)
    assert "callback-token" not in repr(request)


async def test_the_subprocess_launcher_passes_the_s3_variables_to_the_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's own AWS_* must not leak in: only what trainer_env built reaches the trainer.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "worker-session-token")
    executable = tmp_path / "trainers" / "fake" / ".venv" / "bin" / "trainyard-trainer"
    executable.parent.mkdir(parents=True)
    dump = "import json, os; print(json.dumps(dict(os.environ)), flush=True)"
    executable.write_text(f"#!{sys.executable}\n{dump}\n")
    executable.chmod(0o755)
    launcher = SubprocessLauncher(tmp_path / "trainers")
    output_dir = tmp_path / "data" / "jobs" / "job_ab12" / "attempt-2"
    env = _env(tmp_path, _s3_storage(tmp_path))

    handle = await launcher.launch(
        LaunchRequest(
            job_id="job_ab12", attempt=2, framework="fake", output_dir=str(output_dir), env=env
        )
    )
    for _ in range(500):
        if not (await launcher.status(handle)).running:
            break
        await asyncio.sleep(0.02)
    lines = await launcher.log_tail(handle, 5)

    seen = json.loads(lines[-1])
    assert {name: seen[name] for name in AWS_VARS} == {name: env[name] for name in AWS_VARS}
    assert seen["TRAINYARD_OUTPUT_URI"] == env["TRAINYARD_OUTPUT_URI"]
    assert "AWS_SESSION_TOKEN" not in seen


def test_an_attempt_resuming_from_a_checkpoint_is_told_where_it_is_and_what_it_was(
    tmp_path: Path,
) -> None:
    checkpoint = Checkpoint(
        path="s3://bucket/pre/jobs/job_ab12/attempt-1/run/weights/last.pt",
        epoch=3,
        attempt=1,
        seq=12,
        size=1234,
        sha256="ab" * 32,
    )
    resumed = trainer_env(
        TRAINING,
        attempt=2,
        callback_url="http://127.0.0.1:8000",
        callback_token="callback-token",
        output_dir=tmp_path / "attempt-2",
        keepalive_s=15,
        resume_from=checkpoint,
    )

    assert resumed["TRAINYARD_RESUME_FROM"] == checkpoint.path
    assert (resumed["TRAINYARD_RESUME_SIZE"], resumed["TRAINYARD_RESUME_SHA256"]) == (
        "1234",
        "ab" * 32,
    )
    assert not RESUME_VARS & set(_env(tmp_path, None))
    assert set(resumed) <= TRAINER_ENV_VARS


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_the_trainer_logs_in_the_workers_format(tmp_path: Path, log_format: LogFormat) -> None:
    env = trainer_env(
        TRAINING,
        attempt=1,
        callback_url="http://127.0.0.1:8000",
        callback_token="callback-token",
        output_dir=tmp_path,
        keepalive_s=15,
        log_format=log_format,
    )
    assert env["TRAINYARD_LOG_FORMAT"] == log_format
