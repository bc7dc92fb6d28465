"""What telemetry costs heartbeat ingest (issue 21), in one run on this machine:

on: this checkout exporting its spans by OTLP/HTTP (to a receiver in this process; 1 heartbeat
    in `trace_heartbeat_every` traced, the default) with its Prometheus metrics;
off: this checkout with tracing off (`OTEL_SDK_DISABLED=true`; the metrics stay: they have no
    switch, and cost a few counter increments);
base: the commit before issue 21 (a git worktree of BASE_COMMIT): no telemetry at all.
Three API processes on one Temporal dev server, rounds alternated; target on/off >= 0.9x.

Run from platform/backend: `python -m bench.telemetry_overhead`. SQLite, closed loops of 8
connections; figures are medians of the rounds. The idle CPU with telemetry on vs off is
bench/idle_cpu.py.
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import uvloop
from bench.auth_overhead import base_checkout, heartbeat_cost, line, remove_checkout
from bench.live_harness import api_process, temporal_dev_server

from trainyard_testing.otlp_receiver import serve_otlp

# The last commit before issue 21 (observability) landed.
BASE_COMMIT = "8576043"
ROUNDS = 3


async def main() -> None:
    figures: dict[str, list[float]] = {}
    cpu_us: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="trainyard-telemetry-bench-") as scratch:
        root = Path(scratch)
        dataset = root / "shapes"
        dataset.mkdir()
        (dataset / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [a]\n")
        base = base_checkout(root / "base", BASE_COMMIT)
        try:
            with temporal_dev_server() as temporal, serve_otlp() as receiver:
                async with AsyncExitStack() as stack:
                    apis = {
                        "on": await stack.enter_async_context(
                            api_process(
                                temporal,
                                "sqlite",
                                False,
                                root / "on",
                                {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces"},
                            )
                        ),
                        "off": await stack.enter_async_context(
                            api_process(
                                temporal,
                                "sqlite",
                                False,
                                root / "off",
                                {"OTEL_SDK_DISABLED": "true"},
                            )
                        ),
                    }
                    if base is not None:
                        apis["base"] = await stack.enter_async_context(
                            api_process(temporal, "sqlite", False, root / "b", backend_dir=base)
                        )
                    for _ in range(ROUNDS):
                        for name, api in apis.items():
                            rate, cpu_s = await heartbeat_cost(api, dataset.as_uri())
                            figures.setdefault(name, []).append(rate)
                            cpu_us.setdefault(name, []).append(cpu_s * 1e6)
                exported = len(receiver.snapshot())
        finally:
            if base is not None:
                remove_checkout(root / "base")
    print(f"telemetry (SQLite, median of {ROUNDS} rounds; {exported} spans exported by 'on')")
    line("heartbeats: tracing+metrics on vs off", figures["on"], figures["off"], 0.9)
    if "base" in figures:
        line(f"heartbeats: on vs {BASE_COMMIT} (none)", figures["on"], figures["base"], 0.9)
    # The API is the bottleneck (one process, busy all the time), so the CPU it spends per
    # heartbeat says what the rates say, with less of this machine's noise.
    per_beat = {name: statistics.median(values) for name, values in cpu_us.items()}
    print("  API CPU per heartbeat: " + ", ".join(f"{n} {us:.0f} us" for n, us in per_beat.items()))
    for other in ("off", "base"):
        if other in per_beat:
            ratio = per_beat[other] / per_beat["on"]
            print(f"  heartbeats per CPU second: on vs {other:<4} ratio {ratio:.2f}")


if __name__ == "__main__":
    uvloop.run(main())
