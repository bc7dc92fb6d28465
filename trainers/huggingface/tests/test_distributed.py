"""The multi-process path (TRAINYARD_GPUS > 1) on CPU: `run_workers` — what the entrypoint runs
once it has found enough GPUs — starts two ranks under torch.distributed.run, which find no CUDA
device and so train with gloo; only rank 0 talks to the backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import trainer_env
from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import JOB_ID, TOKEN, WORKER_SECRETS, SpawnedEnvirons

from trainer.distributed import DistContext, read_outcome, run_workers, write_outcome

LAUNCH = """
import logging, sys
from trainer_kit.control import StopFlag, install_sigterm_handler
from trainer.distributed import run_workers
from trainer.settings import load_settings

stop = StopFlag()
install_sigterm_handler(stop)
logging.basicConfig(level=logging.INFO)
settings = load_settings()
with settings.callback_client() as client:
    sys.exit(run_workers(settings.output_dir, client, stop, 2))
"""


def test_two_processes_train_data_parallel_and_rank_0_reports_with_no_worker_given_a_secret(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = trainer_env(
        callback_server.url,
        image_dataset,
        out,
        tmp_path / "home",
        TRAINYARD_GPUS="2",
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        **WORKER_SECRETS,
    )

    with SpawnedEnvirons() as spawned:
        result = subprocess.run(
            [sys.executable, "-c", LAUNCH],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # torchrun and both ranks were started without the token or any storage key.
    launched = spawned.running("torch.distributed.run") + spawned.running("-m trainer")
    assert sorted(p["RANK"] for p in launched if "RANK" in p) == ["0", "1"]
    secrets = {**WORKER_SECRETS, "TRAINYARD_CALLBACK_TOKEN": TOKEN}
    for process in launched:
        given = sorted(name for name in secrets if name in process)
        assert given == [], f"{process[chr(0) + 'cmdline']} was given {given}"
        assert not set(secrets.values()) & set(process.values())
    assert not (out / ".trainer" / "secrets.json").exists()
    calls = callback_server.snapshot()
    assert all(c.path.startswith(f"/v1/jobs/{JOB_ID}/") for c in calls)
    assert {c.authorization for c in calls} == {f"Bearer {TOKEN}"}, "rank 0 took the token over"
    started = [c.body for c in calls if c.kind == "event" and c.body["type"] == "trainer_started"]
    assert len(started) == 1, "only rank 0 reports"
    assert (started[0]["data"]["world_size"], started[0]["data"]["device"]) == (2, "cpu")
    assert calls[0].body["type"] == "trainer_started"
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert [hb["epoch"] for hb in heartbeats if hb["metrics"]] == [1, 2]
    checkpoints = [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    last = Path(checkpoints[-1]["path"])
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
    assert Path(done[0]["artifacts"]["weights"], "model.safetensors").is_file()
    assert read_outcome(out) == 0


def test_sigterm_reaches_every_rank_and_rank_0_reports_cancelled(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = trainer_env(
        callback_server.url,
        image_dataset,
        out,
        tmp_path / "home",
        TRAINYARD_GPUS="2",
        TRAINYARD_EPOCHS="500",
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
    )
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
    assert read_outcome(out) == 143


def test_dist_context_reads_torchrun_variables_only_for_workers() -> None:
    assert DistContext.from_environment({"RANK": "1", "WORLD_SIZE": "2"}) == DistContext()
    context = DistContext.from_environment(
        {"TRAINYARD_DISTRIBUTED_WORKER": "1", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    )
    assert (context.rank, context.world_size, context.local_rank) == (1, 2, 1)
    assert not context.is_leader
    assert context.distributed


def test_outcome_round_trip(tmp_path: Path) -> None:
    assert read_outcome(tmp_path) is None
    write_outcome(tmp_path, 143)
    assert read_outcome(tmp_path) == 143


def test_workers_that_die_without_an_outcome_make_the_launcher_report_failed(
    callback_server: CallbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers find no TRAINYARD_* variables: each exits 2 before rank 0 could report.
    for name in [n for n in os.environ if n.startswith("TRAINYARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with CallbackClient(callback_server.url, JOB_ID, "tok", sleep=lambda _: None) as client:
        code = run_workers(tmp_path / "out", client, StopFlag(), 2)

    assert code == 1
    [done] = callback_server.snapshot()
    assert (done.kind, done.body["status"]) == ("done", "failed")
    assert done.body["reason"].startswith(
        "DistributedTrainingError: the 2 training processes exited with code 1 before rank 0 "
        "reported an outcome"
    )


def test_a_launcher_cancelled_before_starting_reports_cancelled(
    callback_server: CallbackServer, tmp_path: Path
) -> None:
    stop = StopFlag()
    stop.request_cancel()
    with CallbackClient(callback_server.url, JOB_ID, "tok", sleep=lambda _: None) as client:
        assert run_workers(tmp_path / "out", client, stop, 2) == 143
    assert [c.body["status"] for c in callback_server.of("done")] == ["cancelled"]
