"""Benchmark: a 3-epoch yolo11n run through the whole platform vs the same training run
directly with `yolo train` (same data, arguments and machine), side by side in one run.

Prints the wall time of each repetition, the medians and the ratio platform/direct
(target ≤ 1.05). Runs are interleaved (direct, platform, direct, platform, …) so machine
noise hits both alike. Platform time is measured from `POST /v1/jobs` to the stream closing on
SUCCEEDED; direct time from spawning `yolo train` to its exit. Both include the trainer's
process start-up and the final validation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from trainyard.cli.embedded import EmbeddedConfig, running_platform
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes

REPO_ROOT = Path(__file__).resolve().parents[3]
_TRAINER_SETTINGS = (
    "sync=False",
    *(
        f"{name}=False"
        for name in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
    ),
)
TRAINER_BIN = REPO_ROOT / "trainers" / "ultralytics" / ".venv" / "bin"


def run_direct(data_yaml: Path, out_dir: Path, args: argparse.Namespace) -> float:
    """`yolo train` with the arguments the ultralytics trainer passes for the same request."""
    command = [
        str(TRAINER_BIN / "yolo"),
        "train",
        "model=yolo11n.yaml",
        f"data={data_yaml}",
        f"epochs={args.epochs}",
        f"imgsz={args.imgsz}",
        f"batch={args.batch}",
        "device=cpu",
        "workers=0",
        "plots=False",
        "amp=False",
        f"project={out_dir}",
        "name=direct",
        "exist_ok=True",
    ]
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(out_dir / "yolo-config")}
    # The same Ultralytics settings the trainer applies (analytics and integrations off), so
    # the comparison measures the platform, not a difference in Ultralytics' own set-up.
    subprocess.run(
        [str(TRAINER_BIN / "yolo"), "settings", *_TRAINER_SETTINGS],
        check=True,
        capture_output=True,
        env=env,
    )
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def run_platform(api_url: str, dataset_uri: str, args: argparse.Namespace) -> float:
    body = {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset_uri,
        "task": "detect",
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "gpus": 0,
        "hyperparameters": {"workers": 0},
    }
    started = time.perf_counter()
    job = httpx.post(f"{api_url}/v1/jobs", json=body, timeout=30).json()
    stream = api_url.replace("http", "ws", 1) + f"/v1/jobs/{job['id']}/stream"
    with connect(stream) as ws:
        for raw in ws:
            event = json.loads(raw)
            if event["type"] == "state" and event["data"]["to"] in {"FAILED", "CANCELLED"}:
                raise SystemExit(f"platform run {job['id']} ended {event['data']}")
    return time.perf_counter() - started


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}s" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        root = Path(tmp)
        config = EmbeddedConfig.on_free_ports(
            root / "platform",
        )
        # In the platform's data folder, as `trainyard demo` does: a dataset root by default.
        dataset = make_shapes(
            config.data_dir / "datasets" / "shapes",
            ShapesSpec(train_images=96, val_images=16, image_size=args.imgsz),
        )
        direct: list[float] = []
        through_platform: list[float] = []
        with running_platform(config):
            for index in range(args.repeats):
                direct.append(run_direct(dataset.data_yaml, root / f"direct-{index}", args))
                through_platform.append(run_platform(config.api_url, dataset.uri, args))
                print(
                    f"repeat {index + 1}: direct {direct[-1]:.2f}s  "
                    f"platform {through_platform[-1]:.2f}s"
                )
    direct_median = statistics.median(direct)
    platform_median = statistics.median(through_platform)
    print(
        f"\nyolo11n, {args.epochs} epochs, imgsz {args.imgsz}, batch {args.batch}, "
        f"{dataset.train_images} train images, CPU"
    )
    print(f"direct `yolo train`  median {direct_median:.2f}s  (runs: {_seconds(direct)})")
    print(
        f"through the platform median {platform_median:.2f}s  (runs: {_seconds(through_platform)})"
    )
    print(f"ratio platform/direct {platform_median / direct_median:.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
