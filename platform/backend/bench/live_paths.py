"""Benchmarks of the live paths: callback ingest and event relay.

ingest: sustained heartbeats/s through auth, store and publish vs a no-op FastAPI endpoint
    mounted on the same app instance (same server process, same run), their ratio (target
    >= 0.5), then p99 latency of heartbeats paced at half the measured rate (target < 20 ms).
    Run on SQLite and on PostgreSQL.
relay: a callback sent -> its event received by each of 1000 WebSocket clients of one job,
    in-process bus vs Redis bus (PostgreSQL both), p50/p99 (target p99 < 50 ms) and the ratio
    Redis/in-process of the p99s (target <= 1.5). The sender puts `time.time()` taken just
    before the POST into the heartbeat (metric `sent_at`); each client subtracts it from its
    own `time.time()` when the frame's bytes arrive, so latency includes the ingest itself.

Processes: the API (`serve`, settings from TRAINYARD_*), the Temporal dev server, the load
generator (this process) and, for the relay, the 1000 clients (`listen`, one more process),
so nobody shares a GIL. The clients are lean (wire_clients.py): httpx and websockets would
cost more CPU than the server work measured. Run from platform/backend:
`python -m bench.live_paths [all|ingest|relay]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import uvloop
from bench.live_harness import (
    BACKEND_DIR,
    HOST,
    WARM_UP_EVENTS,
    api_process,
    closed_loop_phase,
    closed_loop_rate,
    heartbeat_body,
    paced_latencies,
    running_job,
    serve,
    temporal_dev_server,
    verdict,
)
from bench.wire_clients import HttpConnection, listen, read_report, write_report

NOTES = """
notes:
- One machine runs everything: the API (one uvicorn process), the load generator, the stream
  clients, PostgreSQL, Redis and the Temporal dev server (check the load average). Figures
  vary by tens of percent from run to run, tails most.
- Ingest ratio: the median of interleaved no-op/heartbeat pairs, each pair taken side by side.
  The no-op is ~0.3 ms of the API's CPU (uvicorn, routing, middleware; "API CPU/request" counts
  every thread of the API process); a heartbeat is also stored durably before its 202, in
  group commits of driver-level statements (callbacks/ingest.py, decision 007).
- Relay: one loop per job writes each event's frame, built once, to every socket (decision
  009): a few ms of ingest, then ~20-30 ms until the last client has it. The p99 over 30
  events is set by the worst few; the API prints every garbage-collector pause over 10 ms to
  stderr, so a bad tail shows whether the collector caused it. Redis adds a hop (publish,
  pub/sub read).
"""


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def bench_ingest(temporal: str, database: str, args: argparse.Namespace) -> None:
    async with api_process(temporal, database, False, args.work) as api:
        connections = [await HttpConnection.open(HOST, api.port) for _ in range(16)]
        # One job per connection, as with 16 trainers reporting at once.
        jobs = [await running_job(connections[0], args.work.as_uri()) for _ in connections]

        async def heartbeat(connection: HttpConnection, index: int) -> None:
            job_id, headers = jobs[index % len(jobs)]
            code, answer = await connection.request(
                "POST", f"/v1/jobs/{job_id}/heartbeat", heartbeat_body(index), headers
            )
            assert code == 202, answer

        async def noop(connection: HttpConnection, index: int) -> None:
            code, answer = await connection.request("POST", "/bench/noop", heartbeat_body(index))
            assert code == 202, answer

        await closed_loop_rate(connections, noop, 1)  # warm-up
        await closed_loop_rate(connections, heartbeat, 1)
        # Interleaved pairs, each pair's ratio taken side by side: a slow spell of this shared
        # machine (seen: the no-op rate alone varying 2100-3100/s between runs) then moves one
        # pair, not the verdict.
        pairs = [
            (
                await closed_loop_phase(connections, noop, args.seconds, api),
                await closed_loop_phase(connections, heartbeat, args.seconds, api),
            )
            for _ in range(args.pairs)
        ]
        beat_rate = statistics.median(beat.rate for _, beat in pairs)
        latencies = await paced_latencies(connections, heartbeat, beat_rate / 2, args.seconds)
        for connection in connections:
            await connection.close()
    ratios = [beat.rate / noop.rate for noop, beat in pairs]
    ratio = statistics.median(ratios)
    p99_ms = percentile(latencies, 99) * 1000
    print(
        f"\ningest: {database} database, in-process bus, 16 connections, "
        f"{args.pairs} interleaved pairs of {args.seconds:.0f} s (medians)"
    )
    print(f"  {'':34} {'measured':>14} {'target':>12}   API CPU/request")
    for name, column in (
        ("no-op endpoint (same server)", 0),
        ("heartbeat (auth, store, publish)", 1),
    ):
        rate = statistics.median(pair[column].rate for pair in pairs)
        cpu = statistics.median(pair[column].api_cpu_s for pair in pairs)
        print(f"  {name:34} {rate:10.0f} /s {'':19} {cpu * 1e6:6.0f} us")
    print(
        f"  {'ratio heartbeat / no-op':34} {ratio:11.2f} x {'>= 0.50 x':>12} "
        f"{verdict(ratio >= 0.5):6}  pairs: {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    print(
        f"  {f'p50 at {beat_rate / 2:.0f} heartbeats/s':34} "
        f"{percentile(latencies, 50) * 1000:10.1f} ms"
    )
    print(
        f"  {f'p99 at {beat_rate / 2:.0f} heartbeats/s':34} {p99_ms:10.1f} ms {'< 20 ms':>12} "
        f"{verdict(p99_ms < 20)}"
    )


async def relay_latencies(
    temporal: str, redis: bool, args: argparse.Namespace
) -> tuple[list[float], float]:
    """Every delivery's latency, and the CPU seconds the clients' process spent receiving."""
    async with api_process(temporal, "postgresql", redis, args.work) as api:
        port = api.port
        connection = await HttpConnection.open(HOST, port)
        job_id, headers = await running_job(connection, args.work.as_uri())
        listener = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.live_paths",
            "listen",
            str(port),
            f"/v1/jobs/{job_id}/stream",
            str(args.clients),
            str(args.events),
            cwd=BACKEND_DIR,
            stdout=asyncio.subprocess.PIPE,
        )
        assert listener.stdout is not None
        if (await listener.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the stream clients did not get ready")
        # A fresh connection: uvicorn closes keep-alive connections idle for 5 s, and
        # connecting 1000 clients takes longer than that.
        await connection.close()
        connection = await HttpConnection.open(HOST, port)
        # Untimed warm-up: the first heartbeats after the clients connected are one-offs
        # (fresh connection, cold caches; the first took 35-50 ms to every client, which
        # alone filled the top 1% of 30 events).
        for index in range(-WARM_UP_EVENTS, args.events):
            body = heartbeat_body(index, timed=index >= 0)
            code, answer = await connection.request(
                "POST", f"/v1/jobs/{job_id}/heartbeat", body, headers
            )
            assert code == 202, answer
            await asyncio.sleep(0.2)  # let the fan-out finish: latency, not queueing
        measured = await read_report(listener)
        await connection.close()
    return measured


async def bench_relay(temporal: str, args: argparse.Namespace) -> None:
    rows = {}
    for name, redis in (("in-process", False), ("Redis pub/sub", True)):
        latencies, clients_cpu_s = await relay_latencies(temporal, redis, args)
        deliveries = args.clients * args.events
        if len(latencies) != deliveries:
            raise RuntimeError(f"{name}: {len(latencies)} deliveries, expected {deliveries}")
        rows[name] = (
            percentile(latencies, 50),
            percentile(latencies, 99),
            clients_cpu_s / deliveries,
        )
    print(
        f"\nrelay: heartbeat POSTed -> frame received by each of {args.clients} WebSocket "
        f"clients of one job, PostgreSQL database, {args.events} heartbeats 0.2 s apart "
        f"(after {WARM_UP_EVENTS} untimed)"
    )
    print(f"  {'bus':16} {'p50':>10} {'p99':>10} {'target p99':>12}        clients' CPU")
    for name, (p50, p99, cpu_per_frame) in rows.items():
        print(
            f"  {name:16} {p50 * 1000:7.1f} ms {p99 * 1000:7.1f} ms {'< 50 ms':>12} "
            f"{verdict(p99 < 0.05):7} {cpu_per_frame * 1e6:5.1f} us/frame"
        )
    ratio = rows["Redis pub/sub"][1] / rows["in-process"][1]
    print(
        f"  {'p99 ratio Redis / in-process':38} {ratio:5.2f} x {'<= 1.50 x':>12} "
        f"{verdict(ratio <= 1.5)}"
    )


async def main(args: argparse.Namespace) -> None:
    # 1000 clients: each is a socket in the client process and one in the server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    print(
        f"machine: {os.cpu_count()} cores shared by the API, the load generator and clients; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with temporal_dev_server() as temporal, tempfile.TemporaryDirectory() as tmp:
        args.work = Path(tmp)
        if args.which in ("all", "ingest"):
            for database in ("sqlite", "postgresql"):
                await bench_ingest(temporal, database, args)
        if args.which in ("all", "relay"):
            await bench_relay(temporal, args)
    print(NOTES)


def run_listener(argv: list[str]) -> None:
    port, path, clients, expected = int(argv[0]), argv[1], int(argv[2]), int(argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    # uvloop, as the API runs on: with asyncio's own loop the 1000 clients spent ~2x the CPU
    # per frame and their own delay was most of the measured latency (p50 62 ms vs 38 ms).
    write_report(*uvloop.run(listen(HOST, port, path, clients, expected)))


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["listen"]:
        run_listener(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("which", nargs="?", choices=("all", "ingest", "relay"), default="all")
        parser.add_argument("--seconds", type=float, default=3.0, help="per ingest phase")
        parser.add_argument("--pairs", type=int, default=3, help="no-op/heartbeat pairs")
        parser.add_argument("--clients", type=int, default=1000)
        parser.add_argument("--events", type=int, default=30)
        asyncio.run(main(parser.parse_args()))
