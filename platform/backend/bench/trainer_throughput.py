"""Benchmark: each trainer's training throughput with the platform's callbacks and tracking on
vs off, side by side in one run (target on/off >= 0.99x).

* on: the job goes through the embedded platform — the trainer's callbacks are stored and
  relayed by the real backend, the worker watches it and ships its log, and MLflow tracking
  copies every epoch to the run;
* off: the same trainer, same environment (`trainer_env`), same data, its callbacks answered by
  a bare sink that stores nothing, no worker, no tracking.

Throughput is train images (samples) per second over epochs 2..N, from the `elapsed_s` the
trainer reports with each epoch's heartbeat: start-up and the first epoch (warm-up) are left
out, each epoch's validation and checkpoint save (and its `checkpoint_saved` callback) are in.
Datasets are sized so an epoch takes a few seconds on a 2-core CPU: per-epoch costs (a
callback, a checkpoint) are then weighed against some training, not against a 0.2 s epoch.
Runs alternate off, on, off, on… so slow drifts of the machine hit both alike; the figure is
the ratio of the median epoch throughputs, each pooled over every timed epoch of its runs (a
slow spell of the machine spoils a few epochs, which the median leaves out, not a whole run).

A shared 2-core VM varies by several % from one run to the next, more than the 1 % the target
allows, so the bench also measures the cause directly: the CPU the platform's own processes
(API, worker, Temporal, MLflow; bench/session_cpu.py) use over the same epochs, on minus off.
That CPU is what the platform takes from a trainer that uses every core: `CPU est.` = 1 - it /
cores, far steadier than the measured ratio (it moves by tenths of a %, not by several %).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from bench.session_cpu import CpuSampler
from websockets.sync.client import connect

from trainyard.cli.embedded import EmbeddedConfig, free_local_port, running_platform
from trainyard.datasets.synthetic_classes import ClassesSpec, make_classes
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.datasets.synthetic_text import TextSpec, make_text
from trainyard_workflows.activities.trainer_env import trainer_env
from trainyard_workflows.contracts import TrainingInput

REPO = Path(__file__).resolve().parents[3]
# After the job ended (outside the timed epochs): how often to look for its model version.
_POLL_S = 1.0
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@dataclass(frozen=True)
class Case:
    name: str
    framework: str
    model: str
    task: str
    imgsz: int
    batch: int
    make_dataset: Callable[[Path], tuple[Path, int]]  # (folder, train samples)
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _shapes(root: Path) -> tuple[Path, int]:
    made = make_shapes(root, ShapesSpec(train_images=192, val_images=8, image_size=96))
    return made.root, made.train_images


def _classes(per_class: int) -> Callable[[Path], tuple[Path, int]]:
    def make(root: Path) -> tuple[Path, int]:
        spec = ClassesSpec(train_per_class=per_class, val_per_class=8, image_size=64)
        made = make_classes(root, spec)
        return made.root, made.train_images

    return make


def _topics(root: Path) -> tuple[Path, int]:
    made = make_text(root, TextSpec(train_per_label=1500, val_per_label=8, words=12))
    return made.root, made.train_samples


CASES = [
    Case("ultralytics yolo11n", "ultralytics", "yolo11n.yaml", "detect", 96, 8, _shapes,
         {"workers": 0}),
    Case("timm resnet10t", "timm", "resnet10t", "classify", 64, 16, _classes(256),
         {"workers": 0}),
    Case("huggingface vit (tiny)", "huggingface", "vit", "image-classification", 64, 16,
         _classes(1000), {"model_config": TINY | {"patch_size": 8}}),
    Case("huggingface bert (tiny)", "huggingface", "bert", "text-classification", 64, 16,
         _topics, {"model_config": TINY, "max_length": 32}),
]  # fmt: skip


@dataclass(frozen=True)
class Measured:
    samples_per_s: float
    # Each timed epoch's own throughput (from consecutive heartbeats' elapsed_s).
    epoch_samples_per_s: list[float]
    # Mean number of cores each of the platform's processes used over the same epochs.
    platform: dict[str, float]
    seconds: float  # how long those epochs took

    @staticmethod
    def pooled_cores(runs: list[Measured]) -> float:
        """The platform's mean cores over all of `runs`' timed epochs together."""
        return sum(r.platform_cores * r.seconds for r in runs) / sum(r.seconds for r in runs)

    @property
    def platform_cores(self) -> float:
        return sum(self.platform.values())


def measure(
    heartbeats: list[dict[str, Any]], samples: int, sampler: CpuSampler, names: dict[int, str]
) -> Measured:
    """Train samples per second over epochs 2..N (each epoch's last heartbeat with metrics,
    `_wall` = when it arrived), and the platform's CPU over that same stretch."""
    at: dict[int, tuple[float, float]] = {}
    for beat in heartbeats:
        if beat.get("metrics") and beat.get("elapsed_s") is not None:
            at[int(beat["epoch"])] = (float(beat["elapsed_s"]), float(beat["_wall"]))
    epochs = sorted(at)
    if len(epochs) < 2:
        raise SystemExit(f"too few epoch heartbeats to time: {epochs}")
    first, last = epochs[0], epochs[-1]
    (elapsed_first, wall_first), (elapsed_last, wall_last) = at[first], at[last]
    return Measured(
        samples * (last - first) / (elapsed_last - elapsed_first),
        [samples * (b - a) / (at[b][0] - at[a][0]) for a, b in itertools.pairwise(epochs)],
        {names[sid]: cores for sid, cores in sampler.cores_used(wall_first, wall_last).items()},
        wall_last - wall_first,
    )


@contextmanager
def null_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Answers every callback 202 and keeps the heartbeat bodies (nothing else)."""
    heartbeats: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/heartbeat"):
                heartbeats.append(json.loads(body) | {"_wall": time.time()})
            self.send_response(202)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", heartbeats
    finally:
        server.shutdown()
        server.server_close()


def run_off(
    case: Case,
    dataset: Path,
    samples: int,
    out: Path,
    epochs: int,
    sampler: CpuSampler,
    names: dict[int, str],
) -> Measured:
    training = TrainingInput(
        job_id="job_bench", framework=case.framework, model=case.model,
        dataset_uri=dataset.resolve().as_uri(), task=case.task, epochs=epochs,
        imgsz=case.imgsz, batch=case.batch, gpus=0, hyperparameters=case.hyperparameters,
    )  # fmt: skip
    with null_sink() as (url, heartbeats):
        env = trainer_env(
            training, attempt=1, callback_url=url, callback_token="bench",
            output_dir=out, keepalive_s=15,
        )  # fmt: skip
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
        executable = REPO / "trainers" / case.framework / ".venv" / "bin" / "trainyard-trainer"
        done = subprocess.run(
            [str(executable)], env=base | env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{case.name} (off) exited {done.returncode}: {done.stderr[-2000:]}")
        return measure(heartbeats, samples, sampler, names)


def run_on(
    case: Case,
    dataset: Path,
    samples: int,
    api_url: str,
    epochs: int,
    sampler: CpuSampler,
    names: dict[int, str],
) -> Measured:
    body = {
        "framework": case.framework, "model": case.model,
        "dataset": dataset.resolve().as_uri(), "task": case.task, "epochs": epochs,
        "imgsz": case.imgsz, "batch": case.batch, "gpus": 0,
        "hyperparameters": case.hyperparameters,
    }  # fmt: skip
    with httpx.Client(base_url=api_url, timeout=30) as api:
        response = api.post("/v1/jobs", json=body)
        if response.status_code != 201:
            raise SystemExit(f"{case.name}: submission refused: {response.text}")
        job_id = response.json()["id"]
        # Watched as a user's browser watches it: the stream pushes each event and closes
        # after the terminal state, so the bench adds no requests while the job trains.
        stream = api_url.replace("http", "ws", 1) + f"/v1/jobs/{job_id}/stream"
        with connect(stream, open_timeout=30) as websocket:
            for _ in websocket:
                pass
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] != "SUCCEEDED":
            raise SystemExit(f"{case.name} (on) ended {job['state']}: {job['reason']}")
        # The next run starts once the platform is done with this one (weights uploaded to
        # MLflow, model version registered), so that work is not charged to the next run.
        deadline = time.monotonic() + 120
        while not (job.get("tracking") or {}).get("model_version"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{case.name} (on): the model version was never registered")
            time.sleep(_POLL_S)
            job = api.get(f"/v1/jobs/{job_id}").json()
        events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["items"]
    heartbeats = [
        e["data"] | {"_wall": datetime.fromisoformat(e["created_at"]).timestamp()}
        for e in events
        if e["type"] == "heartbeat"
    ]
    return measure(heartbeats, samples, sampler, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    cases = [case for case in CASES if args.only is None or args.only in case.name]

    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        root = Path(tmp)
        config = EmbeddedConfig(
            data_dir=root / "platform",
            api_port=free_local_port(),
            temporal_port=free_local_port(),
            temporal_ui_port=free_local_port(),
            mlflow_port=free_local_port(),
        )
        results: list[tuple[Case, list[Measured], list[Measured]]] = []
        with (
            running_platform(config) as platform,
            CpuSampler(set(platform.pids.values()), period_s=1.0) as sampler,
        ):
            names = {pid: name for name, pid in platform.pids.items()}
            for case in cases:
                dataset, samples = case.make_dataset(root / "data" / case.name.replace(" ", "-"))
                off: list[Measured] = []
                on: list[Measured] = []
                for index in range(args.repeats):
                    out = root / "off" / f"{case.framework}-{index}"
                    off.append(run_off(case, dataset, samples, out, args.epochs, sampler, names))
                    on.append(
                        run_on(case, dataset, samples, config.api_url, args.epochs, sampler, names)
                    )
                    a, b = off[-1], on[-1]
                    print(
                        f"{case.name} repeat {index + 1}: off {a.samples_per_s:.1f}/s  "
                        f"on {b.samples_per_s:.1f}/s  ({b.samples_per_s / a.samples_per_s:.3f}x); "
                        f"platform CPU off {a.platform_cores:.3f} on {b.platform_cores:.3f} cores "
                        f"(on: {', '.join(f'{k} {v:.3f}' for k, v in b.platform.items())})",
                        flush=True,
                    )
                results.append((case, off, on))
    print(
        f"\ntraining throughput, train samples/s of epochs 2..{args.epochs}, CPU, "
        f"{os.cpu_count()} cores; medians over the epochs of {args.repeats} interleaved pairs"
    )
    cores = os.cpu_count() or 1
    print(
        f"{'trainer':<26}{'off':>10}{'on':>10}{'on/off':>9}{'pairs':>19}{'platform CPU':>14}"
        f"{'CPU est.':>10}  (target >= 0.99x)"
    )
    for case, off, on in results:
        # Pooled over every timed epoch of the interleaved runs: a slow spell of the machine
        # hits a few epochs, which the median leaves out, instead of a whole run.
        off_rate = statistics.median(rate for a in off for rate in a.epoch_samples_per_s)
        on_rate = statistics.median(rate for b in on for rate in b.epoch_samples_per_s)
        ratio = on_rate / off_rate
        # Each pair's own ratio (its two runs minutes apart): the spread shows the noise.
        pairs = [b.samples_per_s / a.samples_per_s for a, b in zip(off, on, strict=True)]
        spread = f"{statistics.median(pairs):.3f} ({min(pairs):.2f}-{max(pairs):.2f})"
        # What the platform's extra CPU while a job trains takes from the machine: the
        # throughput a CPU-bound trainer using every core can keep, at most. Pooled over all
        # runs: the Temporal dev server's own background work (its system workers' polls, in
        # bursts about a minute apart) falls into some windows and not others.
        extra = Measured.pooled_cores(on) - Measured.pooled_cores(off)
        estimate = 1 - max(0.0, extra) / cores
        print(
            f"{case.name:<26}{off_rate:>9.1f}/s{on_rate:>9.1f}/s{ratio:>8.3f}x{spread:>19}"
            f"{extra:>+8.3f} cores{estimate:>9.3f}x  "
            f"{'met' if ratio >= 0.99 else 'MISSED'} / {'met' if estimate >= 0.99 else 'MISSED'}"
        )
    print(
        "on/off: ratio of the median epoch throughputs (noisy on a shared machine: single "
        "runs vary by several %); pairs: the median of each pair's own ratio (lowest-highest)."
        "\nplatform CPU: the platform's processes' extra CPU while the job "
        "trains (on minus off, in cores, sampled from /proc over the same epochs, pooled over "
        "the runs); CPU est. "
        f"= 1 - that / {cores} cores: the throughput left to a trainer that uses every core."
    )


if __name__ == "__main__":
    main()
