"""End to end: the real entrypoint in a subprocess, real (tiny) CPU training, a real HTTP server."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLASSES, trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import JOB_ID, TOKEN, run_trainer, start_trainer

METRICS = ("train/loss", "val/loss", "val/top1", "val/top5", "lr", "train/images_per_s")


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_missing_variable_exits_2_naming_it(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(callback_server.url, dataset, tmp_path / "out", tmp_path / "home")
    del env["TRAINYARD_EPOCHS"]

    result = run_trainer(env, tmp_path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["TRAINYARD_EPOCHS: required but not set"]
    assert callback_server.snapshot() == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAINYARD_EPOCHS", "x", "TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'"),
        ("TRAINYARD_TASK", "detect", "TRAINYARD_TASK: must be classify, got 'detect'"),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"lr0": 0.1}',
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object of timm hyperparameters "
            "(unknown key 'lr0'), got '{\"lr0\": 0.1}'",
        ),
    ],
)
def test_malformed_variable_exits_2_naming_it(
    callback_server: CallbackServer,
    dataset: Path,
    tmp_path: Path,
    *,
    name: str,
    value: str,
    message: str,
) -> None:
    env = trainer_env(
        callback_server.url, dataset, tmp_path / "out", tmp_path / "home", **{name: value}
    )

    result = run_trainer(env, tmp_path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == message
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
    assert (calls[0].kind, calls[0].body["type"]) == ("event", "trainer_started")
    started = calls[0].body["data"]
    assert {key: started[key] for key in ("framework", "model", "device", "attempt")} == {
        "framework": "timm",
        "model": "test_resnet",
        "device": "cpu",
        "attempt": 1,
    }
    assert (started["world_size"], started["pid"] > 0, "resume_from" in started) == (1, True, False)
    assert calls[-1].kind == "done"
    assert [c.kind for c in calls].count("done") == 1

    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 0
    assert heartbeats[0]["metrics"] == {}
    epochs_seen = [hb["epoch"] for hb in heartbeats]
    assert epochs_seen == sorted(epochs_seen), "epoch must never go backwards"
    assert all(hb["epochs"] == 2 for hb in heartbeats)
    body = {"epoch", "epochs", "metrics", "elapsed_s", "eta_s", "system"}
    assert all(set(hb) == body for hb in heartbeats)
    with_metrics = [hb for hb in heartbeats if hb["metrics"]]
    assert [hb["epoch"] for hb in with_metrics] == [1, 2]  # one per epoch
    for hb in with_metrics:
        assert set(hb["metrics"]) == set(METRICS)
        assert all(isinstance(value, float) for value in hb["metrics"].values())
        assert 0 <= hb["metrics"]["val/top1"] <= hb["metrics"]["val/top5"] <= 100
        assert hb["metrics"]["val/top5"] == 100.0  # 3 classes: top-3
        assert hb["elapsed_s"] > 0
        assert isinstance(hb["eta_s"], float)
    assert with_metrics[-1]["eta_s"] == 0.0

    events = [c.body for c in calls if c.kind == "event"]
    checkpoints = [e["data"] for e in events if e["type"] == "checkpoint_saved"]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    assert {c["path"] for c in checkpoints} == {str(out / "run" / "weights" / "last.pt")}
    assert checkpoints[0]["best"] == str(out / "run" / "weights" / "best.pt")
    # The checkpoint of an epoch is announced before that epoch's heartbeat.
    kinds = [(c.kind, c.body.get("type"), c.body.get("epoch")) for c in calls]
    saved = kinds.index(("event", "checkpoint_saved", None))
    assert kinds.index(("heartbeat", None, 1)) > saved

    done = calls[-1].body
    assert (done["status"], done["reason"]) == ("succeeded", None)
    assert done["metrics"]["val/top1"] == with_metrics[-1]["metrics"]["val/top1"]  # final epoch
    assert done["metrics"]["best/epoch"] in {1.0, 2.0}
    assert done["artifacts"] == {
        "weights": str(out / "run" / "weights" / "best.pt"),
        "last": str(out / "run" / "weights" / "last.pt"),
        "results": str(out / "run" / "results.csv"),
        "run_dir": str(out / "run"),
    }
    lines = (out / "run" / "results.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "epoch," + ",".join(METRICS)
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    # Offline and contained: nothing written to $HOME or the working directory.
    assert _files_under(home) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]

    _assert_timm_can_rebuild(Path(done["artifacts"]["weights"]))


def _assert_timm_can_rebuild(weights_file: Path) -> None:
    """The weights are a model timm can rebuild from best.pt alone."""
    import timm
    import torch

    weights = torch.load(weights_file, weights_only=True)
    assert (weights["kind"], weights["classes"], weights["imgsz"]) == ("weights", list(CLASSES), 32)
    model = timm.create_model(weights["architecture"], num_classes=len(weights["classes"]))
    model.load_state_dict(weights["model"])


def test_sigterm_stops_at_batch_boundary_and_reports_cancelled(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(
        callback_server.url, dataset, tmp_path / "out", tmp_path / "home", TRAINYARD_EPOCHS="5000"
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
    done = calls[-1].body
    assert (done["status"], done["reason"]) == ("cancelled", "stopped by SIGTERM")
    assert [c.kind for c in calls].count("done") == 1
    assert set(done["artifacts"]) == {"weights", "last", "results", "run_dir"}
    assert max(c.body["epoch"] for c in calls if c.kind == "heartbeat") < 5000


def test_python_dash_m_and_script_agree(tmp_path: Path) -> None:
    """The console script is installed and honours the same contract."""
    script = Path(sys.executable).parent / "trainyard-trainer"
    result = subprocess.run(
        [str(script)], env={"PATH": str(script.parent)}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("TRAINYARD_JOB_ID: ")
