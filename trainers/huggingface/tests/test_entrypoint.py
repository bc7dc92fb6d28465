"""End to end: the real entrypoint in a subprocess, real (tiny) CPU training, a real HTTP server."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TEXT_HYPERPARAMETERS, make_text_dataset, trainer_env
from trainer_kit.testing.callback_server import Call, CallbackServer
from trainer_kit.testing.processes import JOB_ID, TOKEN, run_trainer, start_trainer

METRICS = ("train/loss", "val/loss", "val/accuracy", "val/f1", "lr", "train/samples_per_s")


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _load_model(folder: Path, home: Path, text: bool) -> str:
    """Load a saved model folder with transformers in a clean process; returns its labels."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    auto = "AutoModelForSequenceClassification" if text else "AutoModelForImageClassification"
    processor = "AutoTokenizer" if text else "AutoImageProcessor"
    code = (
        f"import sys; import transformers as t; p = sys.argv[1]; "
        f"m = t.{auto}.from_pretrained(p, local_files_only=True); "
        f"t.{processor}.from_pretrained(p, local_files_only=True); "
        "print(','.join(m.config.id2label[i] for i in range(len(m.config.id2label))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_missing_variable_exits_2_naming_it(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(callback_server.url, image_dataset, tmp_path / "out", tmp_path / "home")
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
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"lr": 0.1}',
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object of known hyperparameters "
            "(lr: unknown hyperparameter), got '{\"lr\": 0.1}'",
        ),
        (
            "TRAINYARD_TASK",
            "detect",
            "TRAINYARD_TASK: must be one of image-classification, text-classification "
            "(or classify), got 'detect'",
        ),
    ],
)
def test_malformed_variable_exits_2_naming_it(
    callback_server: CallbackServer, tmp_path: Path, name: str, value: str, message: str
) -> None:
    env = trainer_env(
        callback_server.url, tmp_path / "data", tmp_path / "out", tmp_path / "home", **{name: value}
    )

    result = run_trainer(env, tmp_path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert callback_server.snapshot() == []


def _check_heartbeats(calls: list[Call], epochs: int) -> list[dict[str, Any]]:
    """The heartbeats follow the contract; returns those with metrics (one per epoch)."""
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 0
    assert heartbeats[0]["metrics"] == {}
    epochs_seen = [hb["epoch"] for hb in heartbeats]
    assert epochs_seen == sorted(epochs_seen), "epoch must never go backwards"
    assert all(hb["epochs"] == epochs for hb in heartbeats)
    body = {"epoch", "epochs", "metrics", "elapsed_s", "eta_s", "system"}
    assert all(set(hb) == body for hb in heartbeats)
    # trainer_kit/system_metrics.py, fed by the Trainer callback's step hooks; CPU: no GPUs.
    assert all(hb["system"]["ram_bytes"] > 0 and "gpus" not in hb["system"] for hb in heartbeats)
    stepped = [hb["system"] for hb in heartbeats if "samples_per_s" in hb["system"]]
    assert stepped, "no heartbeat carried the training steps"
    assert all(s["samples_per_s"] > 0 and 0 <= s["data_wait_ratio"] <= 1 for s in stepped)
    with_metrics = [hb for hb in heartbeats if hb["metrics"]]
    assert [hb["epoch"] for hb in with_metrics] == list(range(1, epochs + 1))
    for hb in with_metrics:
        assert set(hb["metrics"]) == set(METRICS)
        assert all(isinstance(value, float) for value in hb["metrics"].values())
        assert 0.0 <= hb["metrics"]["val/accuracy"] <= 1.0
        assert hb["elapsed_s"] > 0
        assert isinstance(hb["eta_s"], float)
    assert with_metrics[-1]["eta_s"] == 0.0
    # Each epoch's checkpoint is announced before that epoch's heartbeat.
    for epoch in range(1, epochs + 1):
        event = next(
            i
            for i, c in enumerate(calls)
            if c.kind == "event" and c.body["data"].get("epoch") == epoch
        )
        beat = next(
            i
            for i, c in enumerate(calls)
            if c.kind == "heartbeat" and c.body["epoch"] == epoch and c.body["metrics"]
        )
        assert event < beat
    return with_metrics


def test_image_classification_reports_progress_and_succeeds(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    out, home = tmp_path / "out", tmp_path / "home"
    env = trainer_env(callback_server.url, image_dataset, out, home, TRAINYARD_TASK="classify")

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    calls = callback_server.snapshot()
    assert all(c.path.startswith(f"/v1/jobs/{JOB_ID}/") for c in calls)
    assert all(c.authorization == f"Bearer {TOKEN}" for c in calls)
    assert TOKEN not in output
    assert calls[0].kind == "event"
    assert calls[0].body["type"] == "trainer_started"
    started = calls[0].body["data"]
    assert (started["framework"], started["model"], started["device"]) == (
        "huggingface",
        "vit",
        "cpu",
    )
    assert started["attempt"] == 1
    assert "resume_from" not in started
    assert calls[-1].kind == "done"
    assert [c.kind for c in calls].count("done") == 1

    with_metrics = _check_heartbeats(calls, epochs=2)
    checkpoints = [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    for checkpoint in checkpoints:
        folder = Path(checkpoint["path"])
        assert folder.parent == out / "run" / "checkpoints"
        assert folder.name.startswith("checkpoint-")
    last = Path(checkpoints[-1]["path"])
    for name in ("COMPLETE", "trainyard_state.json", "trainer_state.json", "optimizer.pt"):
        assert (last / name).is_file(), name

    done = calls[-1].body
    assert done["status"] == "succeeded"
    assert done["reason"] is None
    assert done["metrics"]["val/accuracy"] == with_metrics[-1]["metrics"]["val/accuracy"]
    artifacts = done["artifacts"]
    assert artifacts == {
        "weights": str(out / "run" / "model"),
        "last": str(last),
        "results": str(out / "run" / "results.csv"),
        "run_dir": str(out / "run"),
    }
    with (out / "run" / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert float(rows[1]["val/loss"]) == with_metrics[1]["metrics"]["val/loss"]
    assert set(rows[0]) == {"epoch", *METRICS}
    assert _load_model(out / "run" / "model", tmp_path / "loader", text=False) == "blue,red"

    # Offline and contained: nothing in $HOME, nothing outside the output dir, no staging left.
    assert _files_under(home) == []
    assert not (tmp_path / "runs").exists()
    assert not [p for p in _files_under(out / "run") if ".staging" in p.parts]


def test_text_classification_trains_a_tokenizer_and_its_model_fine_tunes_again(
    callback_server: CallbackServer, text_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = trainer_env(
        callback_server.url,
        text_dataset,
        out,
        tmp_path / "home",
        TRAINYARD_MODEL="bert",
        TRAINYARD_HYPERPARAMETERS=json.dumps({**TEXT_HYPERPARAMETERS, "vocab_size": 5000}),
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    done = callback_server.of("done")[-1].body
    assert done["status"] == "succeeded"
    model = Path(done["artifacts"]["weights"])
    tokenizer = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    assert "[PAD]" in vocab
    assert len(vocab) < 5000, "capped by what the texts hold"
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert (config["vocab_size"], config["hidden_size"]) == (len(vocab), 32)
    assert _load_model(model, tmp_path / "loader", text=True) == "neg,pos"

    # The saved folder is a model TRAINYARD_MODEL accepts: fine-tune it on a CSV dataset whose
    # labels differ (a new head), one epoch.
    csv_dataset = make_text_dataset(tmp_path / "csv", fmt="csv")
    (csv_dataset / "train.csv").write_text(
        (csv_dataset / "train.csv").read_text().replace(",pos", ",good"), encoding="utf-8"
    )
    (csv_dataset / "val.csv").write_text(
        (csv_dataset / "val.csv").read_text().replace(",pos", ",good"), encoding="utf-8"
    )
    callback_server.calls.clear()
    env = trainer_env(
        callback_server.url,
        csv_dataset,
        tmp_path / "fine-tuned",
        tmp_path / "home",
        TRAINYARD_MODEL=model.as_uri(),
        TRAINYARD_TASK="text-classification",
        TRAINYARD_EPOCHS="1",
        TRAINYARD_HYPERPARAMETERS=json.dumps({"max_length": 16}),
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    done = callback_server.of("done")[-1].body
    assert done["status"] == "succeeded"
    fine_tuned = Path(done["artifacts"]["weights"])
    tuned_vocab = json.loads((fine_tuned / "tokenizer.json").read_text())["model"]["vocab"]
    assert tuned_vocab == vocab, "the saved model's own tokenizer"
    assert json.loads((fine_tuned / "config.json").read_text())["id2label"] == {
        "0": "good",
        "1": "neg",
    }


def test_sigterm_stops_at_batch_boundary_and_reports_cancelled(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(
        callback_server.url,
        image_dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_EPOCHS="500",
    )
    proc = start_trainer(env, tmp_path)
    try:
        assert callback_server.wait_for(
            lambda calls: any(c.kind == "heartbeat" and c.body["epoch"] >= 1 for c in calls),
            timeout=120,
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
    assert calls[-1].body["reason"] == "stopped by SIGTERM"
    assert [c.kind for c in calls].count("done") == 1
    completed = max(c.body["epoch"] for c in calls if c.kind == "heartbeat")
    assert completed < 500
    # The partial epoch is neither evaluated nor checkpointed.
    checkpoints = [c for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"]
    assert checkpoints[-1].body["data"]["epoch"] == completed
    assert calls[-1].body["artifacts"]["last"] == checkpoints[-1].body["data"]["path"]


def test_refused_callback_stops_training_without_further_callbacks(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path
) -> None:
    def responder(kind: str, body: dict[str, Any]) -> int:
        # The job is "cancelled" on the backend once the first epoch is reported.
        if kind == "heartbeat" and body.get("epoch", 0) >= 1:
            return 409
        return 202

    callback_server.responder = responder
    env = trainer_env(
        callback_server.url,
        image_dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_EPOCHS="500",
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    calls = callback_server.snapshot()
    refused = [i for i, c in enumerate(calls) if c.status == 409]
    assert refused, "the trainer never reported an epoch"
    assert refused[0] == len(calls) - 1, "nothing may be sent after a 409"
    assert all(c.kind != "done" for c in calls)
    assert "409" in result.stderr


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("no val folder", "FileNotFoundError: dataset has no val/ folder: "),
        ("unknown val label", "DatasetError: "),
        ("nothing", "FileNotFoundError: dataset "),
    ],
)
def test_broken_dataset_reports_failed(
    callback_server: CallbackServer, tmp_path: Path, layout: str, expected: str
) -> None:
    root = tmp_path / "broken"
    if layout == "no val folder":
        (root / "train" / "a").mkdir(parents=True)
    elif layout == "unknown val label":
        make_text_dataset(root)
        with (root / "val.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "meh", "label": "neutral"}) + "\n")
        expected += f"{root / 'val.jsonl'} record 9: label 'neutral' is not a class"
    else:
        root.mkdir()
    env = trainer_env(callback_server.url, root, tmp_path / "out", tmp_path / "home")

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    assert done[0].body["reason"].startswith(expected)
    assert callback_server.snapshot()[0].body["type"] == "trainer_started"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"TRAINYARD_DATASET_URI": "gs://bucket/dataset"}, "unsupported dataset URI scheme 'gs'"),
        ({"TRAINYARD_DATASET_URI": "file:///definitely/not/here"}, "dataset folder not found"),
        ({"TRAINYARD_MODEL": "/no/such/model"}, "FileNotFoundError: model folder not found"),
        ({"TRAINYARD_MODEL": "gpt-nine"}, "ModelError: TRAINYARD_MODEL 'gpt-nine' is neither"),
    ],
)
def test_unusable_dataset_or_model_reports_failed(
    callback_server: CallbackServer,
    image_dataset: Path,
    tmp_path: Path,
    overrides: dict[str, str],
    expected: str,
) -> None:
    env = trainer_env(
        callback_server.url, image_dataset, tmp_path / "out", tmp_path / "home", **overrides
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


@pytest.mark.parametrize("gpus", ["1", "2"])
def test_gpus_without_a_gpu_report_failed_naming_the_variable(
    callback_server: CallbackServer, image_dataset: Path, tmp_path: Path, gpus: str
) -> None:
    # Hide any GPU so the test means the same on every machine.
    env = trainer_env(
        callback_server.url,
        image_dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_GPUS=gpus,
        CUDA_VISIBLE_DEVICES="",
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    calls = callback_server.snapshot()
    assert [c.kind for c in calls] == ["event", "done"]
    assert calls[0].body["type"] == "trainer_started"
    assert calls[1].body["status"] == "failed"
    assert calls[1].body["reason"].startswith(f"GPUUnavailableError: TRAINYARD_GPUS={gpus} ")
    assert "CUDA" in calls[1].body["reason"]
