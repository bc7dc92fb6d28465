"""Benchmark: the embedded platform's idle CPU with telemetry on vs off.

`trainyard up` as a user starts it, no job: on, the API and the worker export their spans to the
local MLflow (decision 015), as by default; off, `OTEL_TRACES_EXPORTER=none` (what a user sets to
turn traces off), so no exporter runs and MLflow gets nothing. Each component's CPU (user +
system, its whole session: bench/session_cpu.py) over the idle window, after a settling pause;
platforms alternate off, on, off, on… so machine noise hits both alike. Idle CPU on a training
machine is taken from the trainer (decision 010).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.session_cpu import session_cpu_s

from trainyard.cli.embedded import EmbeddedConfig, running_platform

OFF, ON = "off", "on"
COMPONENTS = ("mlflow", "temporal", "api", "worker")


def idle_cores(data_dir: Path, telemetry: str, settle_s: float, idle_s: float) -> dict[str, float]:
    """Cores each component used while a fresh platform sat idle for `idle_s`."""
    config = EmbeddedConfig.on_free_ports(
        data_dir,
    )
    if telemetry == OFF:
        os.environ["OTEL_TRACES_EXPORTER"] = "none"
    try:
        with running_platform(config) as platform:
            time.sleep(settle_s)  # start-up's own work (migrations, first polls) done
            sessions = {name: platform.pids[name] for name in COMPONENTS}
            before = session_cpu_s(set(sessions.values()))
            started = time.monotonic()
            time.sleep(idle_s)
            after = session_cpu_s(set(sessions.values()))
            elapsed = time.monotonic() - started
    finally:
        os.environ.pop("OTEL_TRACES_EXPORTER", None)
    return {name: (after[pid] - before[pid]) / elapsed for name, pid in sessions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--settle-s", type=float, default=10.0)
    args = parser.parse_args()
    if "OTEL_TRACES_EXPORTER" in os.environ:
        raise SystemExit("unset OTEL_TRACES_EXPORTER: the bench sets it for the off platforms")

    measured: dict[str, list[dict[str, float]]] = {OFF: [], ON: []}
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        for index in range(args.rounds):
            for telemetry in (OFF, ON):
                folder = Path(tmp) / f"{telemetry}-{index}"
                cores = idle_cores(folder, telemetry, args.settle_s, args.idle_s)
                measured[telemetry].append(cores)
                print(
                    f"round {index + 1}, telemetry {telemetry}: "
                    + ", ".join(f"{name} {used:.4f}" for name, used in cores.items())
                    + f", all {sum(cores.values()):.4f} cores",
                    flush=True,
                )

    def median(telemetry: str, name: str | None) -> float:
        rounds = measured[telemetry]
        return statistics.median(
            sum(cores.values()) if name is None else cores[name] for cores in rounds
        )

    print(
        f"\nthe embedded platform idle, telemetry off vs on, cores (median of {args.rounds} "
        f"rounds of {args.idle_s:g} s; {os.cpu_count()} cores)"
    )
    print(f"{'component':<12}{'off':>10}{'on':>10}{'on - off':>10}")
    for name in (*COMPONENTS, None):
        off, on = median(OFF, name), median(ON, name)
        print(f"{name or 'all':<12}{off:>10.4f}{on:>10.4f}{on - off:>+10.4f}")


if __name__ == "__main__":
    main()
