"""Benchmark: each trainer's training throughput with the platform's callbacks and tracking on
vs off, side by side in one run (target on/off >= 0.99x).

On and off alternate epoch by epoch inside one trainer process. A job goes through the embedded
platform as any other (API, Temporal workflow, worker, MLflow tracking, the bench watching its
live stream as a browser would); the trainer's callbacks reach the platform through a relay of
the bench's (bench/callback_relay.py), which tells the bench the moment each epoch ends. At
that moment the bench stops or continues the processes that take callbacks and tracking: the
API and the MLflow server (SIGSTOP / SIGCONT, bench/platform_freeze.py), the trainer left
running, so the epochs go in threes:

* off: the API and MLflow are stopped. They use no CPU and wake for nothing: no callback is
  taken, stored or relayed, nothing is tracked (the worker's copy to MLflow waits for both);
* resuming (not timed): they catch up with what waited: the previous epochs' callbacks, the
  MLflow copy;
* on: the platform runs as it does for any job: it takes the previous epoch's heartbeat,
  relays it, copies the epoch to MLflow.

What runs a job at all runs in both: Temporal and the worker watching the trainer, as they do
for a trainer that sends nothing. `--stopped platform` stops them too in the off epochs: the
whole platform against the trainer alone, the stricter figure (decision 011).

Why not whole runs, on against off: on a shared 2-core VM, two runs of the same trainer minutes
apart differed by up to ±40 % (2026-12-04; 13 % with each run alone on the machine), while the
epochs of one run agree within a few %; a 1 % target cannot be resolved from runs. Here each
off epoch is compared with the on epochs just before and two epochs after it (their mean
cancels a steady drift): on/off is the median of those ratios, with their mean ± 2 standard
errors to show what the run can resolve. Throughput is train samples per second of one epoch,
from the `elapsed_s` the trainer reports with each epoch's heartbeat: its validation and
checkpoint save (and `checkpoint_saved` callback) are in.

The trainer sends its callbacks in both states (the relay answers them): their cost to the
trainer, a JSON body posted by its outbox thread once an epoch, is in both. The platform's CPU
over the on epochs less that over the off ones (from /proc at each epoch's end,
bench/session_cpu.py) gives the second figure: `CPU est.` = 1 - it / cores, the throughput left
to a trainer that uses every core (`all est.`: the same from the whole platform's CPU). The
third is the trainer's side of it: how much longer its threads waited for a CPU (the
scheduler's run delay, /proc/<pid>/task/<tid>/schedstat) in the on epochs than in the off ones.
`wait bound` = 1 - that, in seconds per second, is the worst case, where every such wait held
up the whole trainer (its other threads waiting for the delayed one at the next barrier). Both
are far steadier than the measured ratio. Last, the API's answer times to the trainer's
callbacks sent during the on epochs: what the platform's yielding the CPU costs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench.callback_relay import CallbackRelay
from bench.platform_freeze import PlatformFreezer
from bench.session_cpu import child_sessions, session_cpu_s, session_wait_s
from bench.throughput_cases import CASES, Case
from websockets.sync.client import connect

from trainyard.cli.embedded import EmbeddedConfig, running_platform

# After the job ended (outside the timed epochs): how often to look for its model version.
_POLL_S = 1.0

OFF, RESUMING, ON = "off", "resuming", "on"
WARM_UP = "warm-up"

# The components stopped in the off epochs, for each --stopped choice.
STOPPED = {
    "callbacks-and-tracking": ("api", "mlflow"),
    "platform": ("api", "mlflow", "temporal", "worker"),
}


def phase_of(epoch: int) -> str:
    """The platform's state during `epoch` (1-based): the first epoch warms up (on), then
    resuming, on, off, resuming, on, off…; a run of 3n + 3 epochs ends on an on epoch."""
    return WARM_UP if epoch == 1 else (RESUMING, ON, OFF)[(epoch - 2) % 3]


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    elapsed_s: float  # the trainer's clock, from its heartbeat
    wall: float  # when the heartbeat reached the bench
    platform_cpu_s: dict[int, float]  # per component session, so far
    trainer_wait_s: float = 0.0  # its threads' time runnable but waiting for a CPU, so far


class AlternatingPlatform:
    """Sees every callback (the relay's observer): at each epoch's first heartbeat with
    metrics it records the epoch's end and puts the platform into the next epoch's state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._freezer: PlatformFreezer | None = None
        self._sessions: set[int] = set()
        self._worker = 0
        self._trainers: set[int] = set()
        self._epochs = 0
        self.ends: dict[int, EpochEnd] = {}

    def attach(self, freezer: PlatformFreezer, sessions: set[int], worker: int) -> None:
        """`worker`: the worker's pid, whose children lead the trainers' sessions."""
        self._freezer, self._sessions, self._worker = freezer, sessions, worker

    def reset(self, epochs: int) -> None:
        """Before each job: it trains `epochs` epochs."""
        with self._lock:
            self._epochs, self.ends, self._trainers = epochs, {}, set()

    def observe(self, path: str, body: dict[str, Any]) -> None:
        if not path.endswith("/heartbeat") or not body.get("metrics"):
            return
        if self._freezer is None or body.get("elapsed_s") is None:
            return
        epoch = int(body["epoch"])
        with self._lock:
            if epoch in self.ends:
                return
            self._trainers = self._trainers or child_sessions(self._worker)
            self.ends[epoch] = EpochEnd(
                epoch,
                float(body["elapsed_s"]),
                time.time(),
                session_cpu_s(self._sessions),
                session_wait_s(self._trainers),
            )
            # After the last epoch the platform runs: the job ends as any other.
            if epoch < self._epochs and phase_of(epoch + 1) == OFF:
                self._freezer.freeze()
            else:
                self._freezer.thaw()


@dataclass(frozen=True)
class CaseFigures:
    rates: dict[int, float]  # epoch -> train samples/s
    cores: dict[int, dict[str, float]]  # epoch -> component -> mean cores used
    seconds: dict[int, float]  # epoch -> wall seconds
    waits: dict[int, float] = field(default_factory=dict)  # epoch -> trainer's wait s per s
    answers_s: list[float] = field(default_factory=list)  # the API's, to callbacks sent when on

    @staticmethod
    def of(
        ends: dict[int, EpochEnd],
        samples: int,
        names: dict[int, str],
        answers: Sequence[tuple[float, float]] = (),
    ) -> CaseFigures:
        """`answers`: (when sent, seconds) of each callback the relay forwarded."""
        rates, cores, seconds, waits = {}, {}, {}, {}
        for epoch, end in sorted(ends.items()):
            before = ends.get(epoch - 1)
            if before is None or phase_of(epoch) == WARM_UP:
                continue
            wall = end.wall - before.wall
            rates[epoch] = samples / (end.elapsed_s - before.elapsed_s)
            seconds[epoch] = wall
            waits[epoch] = (end.trainer_wait_s - before.trainer_wait_s) / wall
            cores[epoch] = {
                names[session]: (used - before.platform_cpu_s[session]) / wall
                for session, used in end.platform_cpu_s.items()
            }
        on = [(ends[e - 1].wall, ends[e].wall) for e in rates if phase_of(e) == ON]
        # Sent and answered inside an on epoch: one sent just before the platform was stopped
        # waits through the off epoch, which is the bench's doing, not the API's.
        answers_s = [
            took for sent, took in answers if any(a <= sent and sent + took < b for a, b in on)
        ]
        return CaseFigures(rates, cores, seconds, waits, answers_s)

    def epochs(self, phase: str) -> list[int]:
        return [epoch for epoch in self.rates if phase_of(epoch) == phase]

    def _compared(self) -> list[int]:
        """The off epochs with both on neighbours (1 before, 2 after) measured."""
        return [e for e in self.epochs(OFF) if e - 1 in self.rates and e + 2 in self.rates]

    def ratios(self) -> list[float]:
        """Each off epoch's neighbours' mean (the on epochs 1 before and 2 after) over it."""
        return [
            (self.rates[epoch - 1] + self.rates[epoch + 2]) / 2 / self.rates[epoch]
            for epoch in self._compared()
        ]

    def extra_waits(self) -> list[float]:
        """For each off epoch, how much longer the trainer's threads waited for a CPU in its on
        neighbours (their mean), in seconds per second."""
        return [
            (self.waits[epoch - 1] + self.waits[epoch + 2]) / 2 - self.waits[epoch]
            for epoch in self._compared()
        ]

    def median_rate(self, phase: str) -> float:
        return statistics.median(self.rates[epoch] for epoch in self.epochs(phase))

    def pooled_wait(self, phase: str) -> float:
        """The trainer's threads' wait for a CPU, seconds per second, over all epochs of
        `phase` together."""
        epochs = self.epochs(phase)
        total = sum(self.seconds[epoch] for epoch in epochs)
        return sum(self.waits[e] * self.seconds[e] for e in epochs) / total

    def pooled_cores(self, phase: str) -> dict[str, float]:
        """Each component's mean cores over all epochs of `phase` together."""
        epochs = self.epochs(phase)
        total = sum(self.seconds[epoch] for epoch in epochs)
        names = self.cores[epochs[0]]
        return {
            name: sum(self.cores[e][name] * self.seconds[e] for e in epochs) / total
            for name in names
        }


def run_case(
    case: Case, dataset: Path, api_url: str, epochs: int, alternation: AlternatingPlatform
) -> None:
    """One job of `case` through the platform, watched over its live stream to the end."""
    alternation.reset(epochs)
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
        # after the terminal state. No keep-alive pings of the bench's own: the API does not
        # answer them while it is stopped for an off epoch.
        stream = api_url.replace("http", "ws", 1) + f"/v1/jobs/{job_id}/stream"
        with connect(stream, open_timeout=30, ping_interval=None) as websocket:
            for _ in websocket:
                pass
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] != "SUCCEEDED":
            raise SystemExit(f"{case.name} ended {job['state']}: {job['reason']}")
        # The next case starts once the platform is done with this one (weights uploaded to
        # MLflow, model version registered).
        deadline = time.monotonic() + 120
        while not (job.get("tracking") or {}).get("model_version"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{case.name}: the model version was never registered")
            time.sleep(_POLL_S)
            job = api.get(f"/v1/jobs/{job_id}").json()


def _cores_text(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {used:.3f}" for name, used in cores.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--triplets", type=int, default=15, help="off/resuming/on threes per trainer"
    )
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument(
        "--stopped",
        choices=STOPPED,
        default="callbacks-and-tracking",
        help="what is stopped in the off epochs: the API and MLflow (default), or the whole "
        "platform (Temporal and the worker too)",
    )
    args = parser.parse_args()
    stopped = STOPPED[args.stopped]
    cases = [case for case in CASES if args.only is None or args.only in case.name]
    epochs = 3 * args.triplets + 3
    cpus = os.cpu_count() or 1

    alternation = AlternatingPlatform()
    results: list[tuple[Case, CaseFigures]] = []
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        root = Path(tmp)
        config = EmbeddedConfig.on_free_ports(
            root / "platform",
        )
        with CallbackRelay(config.api_url, alternation.observe) as relay:
            # The worker hands trainers the relay's URL instead of the API's.
            config = dataclasses.replace(config, extra_env={"TRAINYARD_CALLBACK_URL": relay.url})
            with running_platform(config) as platform:
                sessions = set(platform.pids.values())
                names = {pid: name for name, pid in platform.pids.items()}
                with PlatformFreezer({platform.pids[name] for name in stopped}) as freezer:
                    alternation.attach(freezer, sessions, platform.pids["worker"])
                    for case in cases:
                        folder = root / "data" / case.name.replace(" ", "-")
                        dataset, samples = case.make_dataset(folder)
                        run_case(case, dataset, config.api_url, epochs, alternation)
                        figures = CaseFigures.of(alternation.ends, samples, names, relay.answers)
                        results.append((case, figures))
                        ratios = figures.ratios()
                        print(
                            f"{case.name}: each off epoch's on neighbours over it: "
                            f"{' '.join(f'{r:.3f}' for r in ratios)}; platform while on: "
                            f"{_cores_text(figures.pooled_cores(ON))}; while off: "
                            f"{_cores_text(figures.pooled_cores(OFF))}; trainer's "
                            f"wait for a CPU, s/s: on {figures.pooled_wait(ON):.4f}, off "
                            f"{figures.pooled_wait(OFF):.4f}",
                            flush=True,
                        )
            if relay.refusals:
                raise SystemExit(f"the API refused forwarded callbacks: {relay.refusals}")
    _print_table(results, args.triplets, cpus, stopped)


TARGET = 0.99


def verdict(mean: float, error: float) -> str:
    """Whether the run shows the target met, missed, or cannot tell (its interval holds it)."""
    if mean - error >= TARGET:
        return "met"
    if mean + error < TARGET:
        return "MISSED"
    return "unresolved"


def _met(ratio: float) -> str:
    return "met" if ratio >= TARGET else "MISSED"


def _interval(values: list[float]) -> tuple[float, float]:
    """The mean of `values` and twice its standard error."""
    return statistics.fmean(values), 2 * statistics.stdev(values) / len(values) ** 0.5


def _print_table(
    results: list[tuple[Case, CaseFigures]], triplets: int, cpus: int, stopped: Sequence[str]
) -> None:
    print(
        f"\ntraining throughput, train samples/s per epoch, CPU, {cpus} cores; "
        f"{', '.join(stopped)} stopped (off) and running (on) in alternate epochs of one run, "
        f"{triplets} each"
    )
    print(
        f"{'trainer':<26}{'off':>10}{'on':>10}{'on/off':>9}{'mean ± 2 SE':>17}"
        f"{'extra CPU':>14}{'CPU est.':>10}{'trainer waits':>20}{'wait bound':>12}"
        f"{'API answers':>16}{'in both':>14}{'all est.':>10}"
        f"  (target >= {TARGET}x: measured / CPU est. / wait bound)"
    )
    for case, figures in results:
        ratios = figures.ratios()
        mean, error = _interval(ratios)
        on = sum(figures.pooled_cores(ON).values())
        both = sum(figures.pooled_cores(OFF).values())
        estimate = 1 - max(0.0, on - both) / cpus
        waited, wait_error = _interval(figures.extra_waits())
        answers = figures.answers_s or [float("nan")]
        print(
            f"{case.name:<26}{figures.median_rate(OFF):>9.1f}/s{figures.median_rate(ON):>9.1f}/s"
            f"{statistics.median(ratios):>8.3f}x{f'{mean:.3f} ± {error:.3f}':>17}"
            f"{on - both:>+8.3f} cores{estimate:>9.3f}x"
            f"{f'{waited:+.4f} ± {wait_error:.4f}':>20}{1 - waited:>11.3f}x"
            f"{f'{1000 * statistics.median(answers):.0f} / {1000 * max(answers):.0f} ms':>16}"
            f"{both:>8.3f} cores{1 - on / cpus:>9.3f}x  "
            f"{verdict(mean, error)} / {_met(estimate)} / {verdict(1 - waited, wait_error)}"
        )
    print(
        "off / on: median throughput of the epochs with the stopped components stopped / "
        "running; on/off: median over the off epochs of their on neighbours' mean (1 epoch "
        "before, 2 after) over them; mean ± 2 SE: the mean of those ratios and twice its "
        "standard error (an underestimate: neighbouring ratios share an on epoch). measured: met "
        "or MISSED when that interval lies above or below the target, unresolved when it holds "
        "it.\n"
        "extra CPU: the platform's processes' CPU over the on epochs less that over the off ones; "
        f"CPU est. = 1 - that / {cpus} cores: the throughput left to a trainer that uses every "
        "core.\n"
        "trainer waits: how much longer the trainer's threads waited for a CPU (runnable, not "
        "running) in the on epochs than in the off one between them, seconds per second (mean "
        "± 2 SE); wait bound = 1 - that: the worst case, where every such wait held up the "
        "whole trainer (its other threads waiting for the delayed one at the next barrier).\n"
        "API answers: median / longest time the API took to answer a trainer's callback sent "
        "during the on epochs: what yielding the CPU to the training costs the platform.\n"
        "in both: the CPU of what ran in the off epochs too (what runs a job at all: Temporal, "
        f"the worker's watch); all est. = 1 - the whole platform's CPU in the on epochs / {cpus} "
        "cores: the CPU estimate against the trainer alone."
    )


if __name__ == "__main__":
    main()
