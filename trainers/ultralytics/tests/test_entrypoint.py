"""End to end: the real entrypoint in a subprocess, real (tiny) CPU training, a real HTTP server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import JOB_ID, TOKEN, run_trainer, start_trainer


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_missing_variable_exits_2_naming_it(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(callback_server.url, dataset, tmp_path / "out", tmp_path / "home")
    del env["TRAINYARD_EPOCHS"]

    result = run_trainer(env, tmp_path, timeout=60)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["TRAINYARD_EPOCHS: required but not set"]
    assert callback_server.snapshot() == []
    assert not (tmp_path / "out").exists()


def test_malformed_variable_exits_2_naming_it(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(
        callback_server.url, dataset, tmp_path / "out", tmp_path / "home", TRAINYARD_EPOCHS="x"
    )

    result = run_trainer(env, tmp_path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == "TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'"
    assert callback_server.snapshot() == []


def test_two_epoch_training_reports_progress_and_succeeds(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    out, home = tmp_path / "out", tmp_path / "home"
    env = trainer_env(callback_server.url, dataset, out, home)

    result = run_trainer(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    calls = callback_server.snapshot()
    assert all(c.path.startswith(f"/v1/jobs/{JOB_ID}/") for c in calls)
    assert all(c.authorization == f"Bearer {TOKEN}" for c in calls)
    assert TOKEN not in result.stdout + result.stderr
    assert calls[0].kind == "event"
    assert calls[0].body["type"] == "trainer_started"
    assert calls[-1].kind == "done"
    assert [c.kind for c in calls].count("done") == 1

    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 0
    epochs_seen = [hb["epoch"] for hb in heartbeats]
    assert epochs_seen == sorted(epochs_seen), "epoch must never go backwards"
    assert all(hb["epochs"] == 2 for hb in heartbeats)
    body = {"epoch", "epochs", "metrics", "elapsed_s", "eta_s", "system"}
    assert all(set(hb) == body for hb in heartbeats)
    # trainer_kit/system_metrics.py, fed by the batch hooks: a CPU run has no GPUs.
    assert all(hb["system"]["ram_bytes"] > 0 and "gpus" not in hb["system"] for hb in heartbeats)
    stepped = [hb["system"] for hb in heartbeats if "samples_per_s" in hb["system"]]
    assert stepped, "no heartbeat carried the training steps"
    assert all(s["samples_per_s"] > 0 and 0 <= s["data_wait_ratio"] <= 1 for s in stepped)
    with_metrics = [hb for hb in heartbeats if hb["metrics"]]
    assert [hb["epoch"] for hb in with_metrics] == [1, 2]  # one per epoch
    for hb in with_metrics:
        metrics = hb["metrics"]
        for name in (
            "train/box_loss",
            "train/cls_loss",
            "train/dfl_loss",
            "metrics/mAP50(B)",
            "metrics/mAP50-95(B)",
            "metrics/precision(B)",
            "metrics/recall(B)",
        ):
            assert isinstance(metrics[name], float), name
        assert hb["elapsed_s"] > 0
        assert isinstance(hb["eta_s"], float)
    assert with_metrics[-1]["eta_s"] == 0.0

    events = [c.body for c in calls if c.kind == "event"]
    checkpoints = [e for e in events if e["type"] == "checkpoint_saved"]
    assert [e["data"]["epoch"] for e in checkpoints] == [1, 2]
    assert all(Path(e["data"]["path"]).name == "last.pt" for e in checkpoints)

    done = calls[-1].body
    assert done["status"] == "succeeded"
    assert done["reason"] is None
    assert "metrics/mAP50(B)" in done["metrics"]
    artifacts = done["artifacts"]
    assert set(artifacts) == {"weights", "last", "results", "run_dir"}
    for path in artifacts.values():
        assert Path(path).is_absolute()
        assert Path(path).exists()
    assert Path(artifacts["weights"]).name == "best.pt"
    assert Path(artifacts["run_dir"]) == out / "run"

    # Offline and contained: settings live in the output dir, integrations are off, $HOME untouched.
    settings = json.loads((out / ".trainer" / "Ultralytics" / "settings.json").read_text())
    for key in ("mlflow", "tensorboard", "wandb", "clearml", "comet", "dvc", "raytune", "sync"):
        assert settings[key] is False, key
    assert settings["api_key"] == ""
    assert _files_under(home) == []
    assert not (tmp_path / "runs").exists()


def test_sigterm_stops_at_batch_boundary_and_reports_cancelled(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_EPOCHS="200",
    )
    proc = start_trainer(env, tmp_path)
    try:
        assert callback_server.wait_for(
            lambda calls: any(c.kind == "heartbeat" and c.body["epoch"] >= 1 for c in calls),
            timeout=90,
        ), "no epoch finished"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 143, output
    calls = callback_server.snapshot()
    assert calls[-1].kind == "done"
    assert calls[-1].body["status"] == "cancelled"
    assert calls[-1].body["reason"]
    assert [c.kind for c in calls].count("done") == 1
    assert max(c.body["epoch"] for c in calls if c.kind == "heartbeat") < 200


def test_refused_callback_stops_training_without_further_callbacks(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    def responder(kind: str, body: dict[str, Any]) -> int:
        # The job is "cancelled" on the backend once the first epoch is reported.
        if kind == "heartbeat" and body.get("epoch", 0) >= 1:
            return 409
        return 202

    callback_server.responder = responder
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_EPOCHS="200",
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    calls = callback_server.snapshot()
    refused = [i for i, c in enumerate(calls) if c.status == 409]
    assert refused, "the trainer never reported an epoch"
    assert refused[0] == len(calls) - 1, "nothing may be sent after a 409"
    assert all(c.kind != "done" for c in calls)
    assert "409" in result.stderr


def test_broken_dataset_reports_failed(
    callback_server: CallbackServer, broken_dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(callback_server.url, broken_dataset, tmp_path / "out", tmp_path / "home")

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    done = callback_server.of("done")
    assert len(done) == 1
    assert done[0].body["status"] == "failed"
    reason = done[0].body["reason"]
    assert reason.startswith("RuntimeError: ")
    assert "missing-val" in reason


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/dataset", "unsupported dataset URI scheme 'gs'"),
        ("file:///definitely/not/here", "dataset folder not found"),
    ],
)
def test_unusable_dataset_uri_reports_failed(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path, uri: str, expected: str
) -> None:
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_DATASET_URI=uri,
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    assert expected in done[0].body["reason"]


def test_python_dash_m_and_script_agree(tmp_path: Path) -> None:
    """The console script is installed and honours the same contract."""
    script = Path(sys.executable).parent / "trainyard-trainer"
    result = subprocess.run(
        [str(script)], env={"PATH": str(script.parent)}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("TRAINYARD_JOB_ID: ")


def test_sigterm_during_start_up_reports_cancelled(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(callback_server.url, dataset, tmp_path / "out", tmp_path / "home")
    proc = start_trainer(env, tmp_path)
    try:
        assert callback_server.wait_for(
            lambda calls: any(c.kind == "heartbeat" for c in calls), timeout=60
        )
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 143, output
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["cancelled"]
    assert all(c.body["epoch"] == 0 for c in callback_server.of("heartbeat"))


@pytest.mark.parametrize("gpus", ["1", "2"])
def test_gpus_without_a_gpu_report_failed(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path, gpus: str
) -> None:
    # Hide any GPU so the test means the same on every machine.
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_GPUS=gpus,
        CUDA_VISIBLE_DEVICES="",
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    assert "CUDA" in done[0].body["reason"]
