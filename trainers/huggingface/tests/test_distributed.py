"""The multi-process path (TRAINYARD_GPUS > 1) on CPU: `launch` — what the entrypoint runs once
it has found enough GPUs — starts two ranks under torch.distributed.run, which find no CUDA
device and so train with gloo; only the launching process talks to the backend, and no rank is
given a secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import trainer_env
from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import JOB_ID, TOKEN, WORKER_SECRETS, SpawnedEnvirons
from trainer_kit.testing.s3 import S3Endpoint

from trainer.distributed import DistContext, WorkerError, worker_result
from trainer.handover import ddp_dir, read_outcomes, write_outcome
from trainer.launcher import launch
from trainer.settings import load_settings

LAUNCH = """
import logging, sys
from trainer_kit.control import StopFlag, install_sigterm_handler
from trainer.launcher import launch
from trainer.settings import load_settings

stop = StopFlag()
install_sigterm_handler(stop)
logging.basicConfig(level=logging.INFO)
settings = load_settings()
with settings.callback_client() as client:
    sys.exit(launch(settings, client, stop, nproc=2))
"""


def _env(server: CallbackServer, dataset: Path, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return trainer_env(
        server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        **overrides,
    )


@pytest.fixture
def own_environ() -> Iterator[None]:
    """The launcher prepares this process's environment for transformers: put it back after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _assert_no_rank_got_a_secret(
    spawned: SpawnedEnvirons, secrets: dict[str, str], out: Path
) -> None:
    """torchrun and both ranks were started without the token or any storage key, and none
    was handed over through a file in the output dir."""
    launched = spawned.running("torch.distributed.run") + spawned.running("-m trainer")
    # A set: a rank's short-lived child, seen between fork and exec, shows the rank's own
    # command line and environment.
    assert {p["RANK"] for p in launched if "RANK" in p} == {"0", "1"}
    for process in launched:
        given = sorted(name for name in secrets if name in process)
        assert given == [], f"{process[chr(0) + 'cmdline']} was given {given}"
        assert not set(secrets.values()) & set(process.values())
    for path in (p for p in out.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert not [v for v in secrets.values() if v.encode() in content], f"{path} holds one"


def test_two_processes_train_data_parallel_and_only_the_launcher_reports_and_uploads(
    callback_server: CallbackServer, image_dataset: Path, s3: S3Endpoint, tmp_path: Path
) -> None:
    callback_server.track_senders = True
    out = tmp_path / "out"
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    output_uri = f"s3://{bucket}/jobs/{JOB_ID}/attempt-1"
    # The storage keys the launcher uploads with, and a platform token: no rank may get either.
    secrets = {
        **s3.env(),
        "TRAINYARD_INTERNAL_TOKEN": WORKER_SECRETS["TRAINYARD_INTERNAL_TOKEN"],
        "TRAINYARD_CALLBACK_TOKEN": TOKEN,
    }
    del secrets["AWS_ENDPOINT_URL"], secrets["AWS_DEFAULT_REGION"]  # not secrets
    env = _env(
        callback_server,
        image_dataset,
        tmp_path,
        **{**s3.env(), **secrets},
        TRAINYARD_OUTPUT_URI=output_uri,
    )

    with SpawnedEnvirons() as spawned:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert proc.returncode == 0, output
    _assert_no_rank_got_a_secret(spawned, secrets, out)
    calls = callback_server.snapshot()
    assert all(c.path.startswith(f"/v1/jobs/{JOB_ID}/") for c in calls)
    assert {c.authorization for c in calls} == {f"Bearer {TOKEN}"}
    assert {c.pid for c in calls} == {proc.pid}, "every callback comes from the launcher"
    started = [c.body for c in calls if c.kind == "event" and c.body["type"] == "trainer_started"]
    assert len(started) == 1
    assert (started[0]["data"]["world_size"], started[0]["data"]["device"]) == (2, "cpu")
    assert started[0]["data"]["pid"] == proc.pid
    assert calls[0].body["type"] == "trainer_started"
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert [hb["epoch"] for hb in heartbeats if hb["metrics"]] == [1, 2], "each epoch once"
    checkpoints = [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    # The launcher uploaded each checkpoint (the ranks have no key), COMPLETE and all.
    uploaded = s3.keys(bucket)
    for checkpoint in checkpoints:
        assert checkpoint["path"].startswith(f"{output_uri}/run/checkpoints/checkpoint-")
        prefix = checkpoint["path"].removeprefix(f"s3://{bucket}/")
        assert f"{prefix}/COMPLETE" in uploaded
    last = out / "run" / "checkpoints" / checkpoints[-1]["path"].rsplit("/", 1)[1]
    # Both ranks wrote their RNG state into the folder before rank 0 published it.
    assert (last / "rng_state_0.pth").is_file()
    assert (last / "rng_state_1.pth").is_file()
    state = json.loads((last / "trainyard_state.json").read_text())
    assert state["world_size"] == 2
    # 16 images, 8 per rank and step: one optimizer step per epoch.
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] == 2
    done = [c.body for c in calls if c.kind == "done"]
    assert [d["status"] for d in done] == ["succeeded"]
    assert calls[-1].kind == "done"
    assert done[0]["artifacts"] == {
        "weights": f"{output_uri}/run/model",
        "last": checkpoints[-1]["path"],
        "results": f"{output_uri}/run/results.csv",
        "run_dir": f"{output_uri}/run",
    }
    assert f"jobs/{JOB_ID}/attempt-1/run/model/model.safetensors" in uploaded
    assert "val/accuracy" in done[0]["metrics"]
    outcomes = read_outcomes(ddp_dir(out), 2)
    assert [outcomes[rank]["status"] for rank in (0, 1)] == ["succeeded", "succeeded"]


def test_sigterm_to_the_launcher_stops_every_rank_and_the_launcher_reports_cancelled(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    env = _env(callback_server, image_dataset, tmp_path, TRAINYARD_EPOCHS="500")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert callback_server.wait_for(
            lambda calls: any(c.kind == "heartbeat" and c.body["epoch"] >= 1 for c in calls),
            timeout=240,
        ), "no epoch finished"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 143, output
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["cancelled"]
    assert done[0].body["reason"] == "stopped by SIGTERM"
    assert callback_server.snapshot()[-1].kind == "done"
    epochs = [c.body["epoch"] for c in callback_server.of("heartbeat") if c.body["metrics"]]
    assert epochs == list(range(1, len(epochs) + 1)), "every epoch once, in order"
    assert read_outcomes(ddp_dir(tmp_path / "out"), 2)[0]["status"] == "cancelled"


def test_a_failing_rank_is_reported_by_the_launcher_in_its_own_words(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "no-val"
    shutil.copytree(image_dataset / "train", dataset / "train")  # the ranks find no val/
    env = _env(callback_server, dataset, tmp_path)

    result = subprocess.run(
        [sys.executable, "-c", LAUNCH],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    [done] = callback_server.of("done")
    assert done.body["status"] == "failed"
    assert done.body["reason"].startswith("FileNotFoundError: dataset has no val/ folder")
    assert callback_server.snapshot()[-1].kind == "done"


def test_dist_context_reads_torchrun_variables_only_for_workers() -> None:
    assert DistContext.from_environment({"RANK": "1", "WORLD_SIZE": "2"}) == DistContext()
    context = DistContext.from_environment(
        {"TRAINYARD_DISTRIBUTED_WORKER": "1", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    )
    assert (context.rank, context.world_size, context.local_rank) == (1, 2, 1)
    assert not context.is_leader
    assert context.distributed


def test_the_ranks_outcomes_make_the_attempts_result(tmp_path: Path) -> None:
    assert read_outcomes(tmp_path, 2) == {}
    write_outcome(tmp_path, 0, "succeeded", metrics={"val/accuracy": 0.5})
    write_outcome(tmp_path, 1, "succeeded", metrics={})
    assert worker_result(read_outcomes(tmp_path, 2), 0, 2) == {"val/accuracy": 0.5}
    # The first failure is the cause; the rank stopped because of it only follows.
    write_outcome(tmp_path, 1, "failed", reason="ValueError: bad image")
    write_outcome(tmp_path, 0, "failed", reason="RuntimeError: connection closed by peer")
    with pytest.raises(WorkerError) as failed:
        worker_result(read_outcomes(tmp_path, 2), 1, 2)
    assert failed.value.reason == "ValueError: bad image"
    # Rank 0 stopped by torchrun, with no rank saying why.
    with pytest.raises(WorkerError, match="another training process failed"):
        worker_result({0: {"status": "cancelled"}}, 1, 2)


def test_workers_that_die_without_an_outcome_make_the_launcher_report_failed(
    callback_server: CallbackServer,
    image_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    own_environ: None,
) -> None:
    settings = load_settings(_env(callback_server, image_dataset, tmp_path))
    # The workers find no TRAINYARD_* variables: each exits 2 before it could write an outcome.
    for name in [n for n in os.environ if n.startswith("TRAINYARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with CallbackClient(callback_server.url, JOB_ID, TOKEN, sleep=lambda _: None) as client:
        code = launch(settings, client, StopFlag(), nproc=2)

    assert code == 1
    [done] = callback_server.of("done")
    assert done.body["status"] == "failed"
    assert done.body["reason"].startswith(
        "DistributedTrainingError: the 2 training processes exited with code 1 before rank 0 "
        "reported an outcome"
    )


def test_a_launcher_cancelled_before_starting_reports_cancelled(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path, own_environ: None
) -> None:
    settings = load_settings(_env(callback_server, image_dataset, tmp_path))
    stop = StopFlag()
    stop.request_cancel()
    with CallbackClient(callback_server.url, JOB_ID, TOKEN, sleep=lambda _: None) as client:
        assert launch(settings, client, stop, nproc=2) == 143
    assert [c.body["status"] for c in callback_server.of("done")] == ["cancelled"]
    assert not ddp_dir(tmp_path / "out").exists(), "no rank was started"
