"""Attempts run in this process (`run_attempt`, as `main` calls it): failures, options, DDP."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import CLASSES, make_dataset, run_in_process, trainer_env
from trainer_kit.control import StopFlag
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import WORKER_SECRETS, SpawnedEnvirons

from trainer.distributed import WorkerError
from trainer.run import ENVIRONMENT, describe


def _env(server: CallbackServer, dataset: Path, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return trainer_env(server.url, dataset, tmp_path / "out", tmp_path / "home", **overrides)


def _hyper(**values: Any) -> str:
    return json.dumps({"workers": 0, "seed": 0, **values})


def _done(server: CallbackServer) -> dict[str, Any]:
    [done] = [c.body for c in server.snapshot() if c.kind == "done"]
    return done


def _metric_epochs(server: CallbackServer) -> list[int]:
    return [c.body["epoch"] for c in server.of("heartbeat") if c.body["metrics"]]


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("unknown model", "UnknownModelError: unknown timm model 'no_such_net'"),
        ("no val split", "FileNotFoundError: dataset has no val/ folder"),
        ("other val classes", "ValueError: val/ classes differ from train/ classes"),
        ("no images", "FileNotFoundError: dataset has no images in"),
        ("gs dataset", "UnsupportedDatasetURIError: unsupported dataset URI scheme 'gs'"),
        ("missing dataset", "FileNotFoundError: dataset folder not found"),
        ("missing weights", "FileNotFoundError: weights file not found: /nowhere/w.pt"),
    ],
)
def test_unusable_inputs_fail_the_attempt_with_a_reason(
    callback_server: CallbackServer, tmp_path: Path, problem: str, expected: str
) -> None:
    root = make_dataset(tmp_path / "set", n_train=1, n_val=1)
    overrides: dict[str, str] = {}
    if problem == "unknown model":
        overrides["TRAINYARD_MODEL"] = "no_such_net"
    elif problem == "no val split":
        shutil.rmtree(root / "val")
    elif problem == "other val classes":
        (root / "val" / CLASSES[0]).rename(root / "val" / "hexagon")
    elif problem == "no images":
        for image in (root / "train").rglob("*.png"):
            image.rename(image.with_suffix(".txt"))
    elif problem == "gs dataset":
        overrides["TRAINYARD_DATASET_URI"] = "gs://bucket/set"
    elif problem == "missing dataset":
        overrides["TRAINYARD_DATASET_URI"] = "file:///definitely/not/here"
    else:
        overrides["TRAINYARD_MODEL"] = "/nowhere/w.pt"

    code = run_in_process(_env(callback_server, root, tmp_path, **overrides))

    assert code == 1
    done = _done(callback_server)
    assert done["status"] == "failed"
    assert done["reason"].startswith(expected), done["reason"]
    assert callback_server.snapshot()[-1].kind == "done"
    assert _metric_epochs(callback_server) == []


def test_more_gpus_than_visible_fail_naming_trainyard_gpus(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    import torch

    wanted = (torch.cuda.device_count() if torch.cuda.is_available() else 0) + 1

    code = run_in_process(_env(callback_server, dataset, tmp_path, TRAINYARD_GPUS=str(wanted)))

    assert code == 1
    calls = callback_server.snapshot()
    assert calls[0].body["type"] == "trainer_started"
    assert calls[0].body["data"]["device"].startswith("cuda:0")
    reason = _done(callback_server)["reason"]
    assert reason.startswith(f"GPUUnavailableError: TRAINYARD_GPUS={wanted} but ")
    assert "CUDA device(s) are visible" in reason


def test_refused_callback_stops_training_without_further_callbacks(
    callback_server: CallbackServer,
    dataset: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def responder(kind: str, body: dict[str, Any]) -> int:
        # The job is "cancelled" on the backend once the first epoch is reported.
        if kind == "heartbeat" and body.get("epoch", 0) >= 1:
            return 409
        return 202

    callback_server.responder = responder

    with caplog.at_level(logging.ERROR):
        code = run_in_process(_env(callback_server, dataset, tmp_path, TRAINYARD_EPOCHS="5000"))

    assert code == 1
    calls = callback_server.snapshot()
    refused = [i for i, c in enumerate(calls) if c.status == 409]
    assert refused == [len(calls) - 1], "nothing may be sent after a 409"
    assert all(c.kind != "done" for c in calls)
    assert "409" in caplog.text


# -- options ------------------------------------------------------------------------------------


def test_training_options_and_weights_as_the_model(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    """Mixup/cutmix, RandAugment, colour jitter, SGD with a step schedule, warm-up, clipping and
    bf16 autocast on CPU train; then best.pt of that run is TRAINYARD_MODEL of another."""
    hyper = _hyper(
        optimizer="sgd",
        lr=0.01,
        scheduler="step",
        decay_epochs=1,
        warmup_epochs=1,
        mixup=0.2,
        cutmix=1.0,
        auto_augment="rand-m9-mstd0.5",
        color_jitter=0.3,
        clip_grad=1.0,
        amp=True,
        drop_rate=0.1,
    )
    env = _env(
        callback_server,
        dataset,
        tmp_path / "first",
        TRAINYARD_EPOCHS="2",
        TRAINYARD_BATCH="5",  # odd: the last sample of each batch sits out of the mix
        TRAINYARD_MODEL="test_efficientnet",
        TRAINYARD_HYPERPARAMETERS=hyper,
    )

    assert run_in_process(env) == 0
    heartbeats = [c.body for c in callback_server.of("heartbeat") if c.body["metrics"]]
    assert [hb["metrics"]["lr"] for hb in heartbeats] == pytest.approx([1e-5, 0.001])
    best = Path(_done(callback_server)["artifacts"]["weights"])

    callback_server.calls.clear()
    env = _env(
        callback_server,
        dataset,
        tmp_path / "second",
        TRAINYARD_EPOCHS="1",
        TRAINYARD_MODEL=best.as_uri(),
        TRAINYARD_HYPERPARAMETERS=_hyper(scheduler="none"),
    )

    assert run_in_process(env) == 0
    assert _done(callback_server)["status"] == "succeeded"


def test_every_heartbeat_carries_the_runs_system_metrics(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    env = _env(callback_server, dataset, tmp_path, TRAINYARD_EPOCHS="1")

    assert run_in_process(env) == 0
    systems = [c.body["system"] for c in callback_server.of("heartbeat")]
    assert systems
    assert all(s["cpu_percent"] >= 0 and s["ram_bytes"] > 0 for s in systems)
    assert not any("gpus" in s for s in systems)  # TRAINYARD_GPUS=0: a CPU run reports none
    stepped = [s for s in systems if "samples_per_s" in s]
    assert stepped, "no heartbeat carried the training steps"
    assert all(s["samples_per_s"] > 0 for s in stepped)
    # workers=0: each batch is decoded in the training loop's own process, so it waited.
    assert all(0 < s["data_wait_ratio"] < 1 for s in stepped)


def test_pretrained_path_with_other_classes_reinitialises_the_head(
    callback_server: CallbackServer, tmp_path: Path
) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    donor = timm.create_model("test_resnet", num_classes=7)
    weights = tmp_path / "donor.safetensors"
    save_file(donor.state_dict(), str(weights))
    dataset = make_dataset(tmp_path / "set", n_train=2, n_val=1)
    env = _env(
        callback_server,
        dataset,
        tmp_path,
        TRAINYARD_EPOCHS="1",
        TRAINYARD_HYPERPARAMETERS=_hyper(pretrained_path=str(weights), lr=1e-12),
    )

    assert run_in_process(env) == 0

    trained = torch.load(tmp_path / "out" / "run" / "weights" / "best.pt", weights_only=True)
    stem = "conv1.weight" if "conv1.weight" in trained["model"] else next(iter(trained["model"]))
    assert torch.allclose(trained["model"][stem], donor.state_dict()[stem], atol=1e-6)
    assert trained["model"]["fc.weight"].shape[0] == len(CLASSES)


# -- data-parallel ------------------------------------------------------------------------------


def test_two_process_ddp_on_cpu_reports_every_epoch_and_stops_on_request(
    callback_server: CallbackServer, dataset: Path, tmp_path: Path
) -> None:
    """The torchrun path with the gloo backend: the launching process follows rank 0's epochs,
    announces each, and forwards a stop request (SIGTERM in production) to the workers."""
    stop = StopFlag()

    def cancel_after_epoch_3() -> None:
        if callback_server.wait_for(
            lambda calls: any(c.kind == "heartbeat" and c.body["epoch"] >= 3 for c in calls),
            timeout=120,
        ):
            stop.request_cancel()

    canceller = threading.Thread(target=cancel_after_epoch_3, daemon=True)
    canceller.start()
    env = _env(callback_server, dataset, tmp_path, TRAINYARD_EPOCHS="5000")

    code = run_in_process(env, nproc=2, stop=stop)
    canceller.join()

    assert code == 143
    calls = callback_server.snapshot()
    assert calls[0].body["data"]["world_size"] == 2
    epochs = _metric_epochs(callback_server)
    assert epochs[:3] == [1, 2, 3]
    assert epochs == list(range(1, len(epochs) + 1)), "every epoch, in order"
    checkpoints = [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]
    assert [c["epoch"] for c in checkpoints] == epochs
    done = _done(callback_server)
    assert (done["status"], calls[-1].kind) == ("cancelled", "done")
    out = tmp_path / "out"
    rows = (out / "run" / "results.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) >= len(epochs)
    outcomes = sorted(p.name for p in (out / ".trainer" / "ddp").glob("outcome-*.json"))
    assert outcomes == ["outcome-0.json", "outcome-1.json"]


def test_two_process_ddp_on_cpu_trains_to_the_end_and_gives_the_workers_no_secret(
    callback_server: CallbackServer,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _env(callback_server, dataset, tmp_path, TRAINYARD_EPOCHS="2")
    # The launching process holds them (as the platform starts it); its workers must not.
    secrets = {**WORKER_SECRETS, "TRAINYARD_CALLBACK_TOKEN": env["TRAINYARD_CALLBACK_TOKEN"]}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)

    with SpawnedEnvirons() as spawned:
        assert run_in_process(env, nproc=2) == 0

    workers = spawned.running("trainer.worker")
    # Each rank ran (a worker's forked children, data loader workers, share its command line
    # and environment, hence its rank); none of them holds a secret.
    assert sorted({w["RANK"] for w in workers if "RANK" in w}) == ["0", "1"]
    for worker in workers:
        given = {name: worker[name] for name in secrets if name in worker}
        assert given == {}, f"a worker was given {sorted(given)}"
        assert not any(value in worker.values() for value in secrets.values())
    assert _metric_epochs(callback_server) == [1, 2]
    done = _done(callback_server)
    assert done["status"] == "succeeded"
    assert set(done["metrics"]) >= {"val/top1", "val/top5", "train/loss", "best/epoch"}
    assert set(done["artifacts"]) == {"weights", "last", "results", "run_dir"}


# -- helpers ------------------------------------------------------------------------------------


def test_prepare_environment_keeps_libraries_offline_and_inside_the_output_dir(
    tmp_path: Path,
) -> None:
    env = {"HOME": "/home/x"}

    private = ENVIRONMENT.prepare(tmp_path / "out", env)

    assert private == tmp_path / "out" / ".trainer"
    assert private.is_dir()
    assert env == {
        "HOME": "/home/x",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(private / "huggingface"),
        "TORCH_HOME": str(private / "torch"),
    }


def test_describe_uses_a_ddp_workers_own_reason() -> None:
    assert describe(WorkerError("ValueError: bad image\nfile x")) == "ValueError: bad image\nfile x"
    assert describe(RuntimeError("one\n line")) == "RuntimeError: one line"
