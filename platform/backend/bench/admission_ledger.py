"""Benchmark: admission decisions per second of the ledger (trainyard/admission/ledger.py).

A busy platform: 64 GPUs and 8 CPU slots, most of them held by 40 running jobs, and a queue of
1,000 waiting jobs across 20 projects (mixed sizes, priorities and ages; half the projects with
quotas, one with its GPU-hours used up). `decide()` judges the whole queue again and again for
`--seconds`; the figures are passes/s, verdicts/s and the CPU time (time.process_time) per pass,
the cost the admission loop pays each time a job is submitted or ends.
"""

from __future__ import annotations

import argparse
import random
import time

from trainyard.admission.ledger import Holding, Quota, Resources, Waiting, decide

PROJECTS = 20
WAITING = 1_000
RUNNING = 40
NOW = 1_000_000.0


def busy_platform(
    seed: int,
) -> tuple[Resources, list[Holding], list[Waiting], dict[str, Quota]]:
    rng = random.Random(seed)
    projects = [f"project-{index:02d}" for index in range(PROJECTS)]
    sizes = (0, 0, 1, 1, 1, 2, 4, 8)
    holding = [
        Holding(f"running-{index}", rng.choice(projects), rng.choice((0, 1, 2)))
        for index in range(RUNNING)
    ]
    waiting = [
        Waiting(
            f"job-{index:04d}",
            rng.choice(projects),
            rng.choice(sizes),
            rng.choice((0, 0, 0, 1, 2)),
            NOW - rng.uniform(0, 7_200),
        )
        for index in range(WAITING)
    ]
    quotas = {
        project: Quota(gpus=rng.choice((8, 16, 32)), runs=rng.choice((None, 4, 10)))
        for project in projects[::2]
    }
    quotas[projects[1]] = Quota(budget_exhausted=True)
    return Resources(gpus=64, cpu_slots=8), holding, waiting, quotas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to judge the queue")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    resources, holding, waiting, quotas = busy_platform(args.seed)

    verdicts = decide(resources, holding, waiting, quotas, NOW)  # warm up, and what one pass says
    admitted = sum(1 for verdict in verdicts if verdict.admitted)
    passes = 0
    cpu, started = time.process_time(), time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        decide(resources, holding, waiting, quotas, NOW)
        passes += 1
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu

    print(
        f"admission ledger ({WAITING} waiting in {PROJECTS} projects, {RUNNING} running, "
        f"{resources.gpus} GPUs, {resources.cpu_slots} CPU slots; {admitted} admitted per pass)"
    )
    print(f"  {'passes':<12} {passes / elapsed:10.0f} /s")
    print(f"  {'verdicts':<12} {passes * len(waiting) / elapsed:10.0f} /s")
    print(f"  {'CPU':<12} {cpu_s / passes * 1e3:10.2f} ms per pass ({cpu_s:.2f} s in all)")


if __name__ == "__main__":
    main()
