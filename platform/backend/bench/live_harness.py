"""Shared plumbing of the live-path benchmarks: the API and Temporal processes, a fresh
PostgreSQL database, a running job to send heartbeats to, and the load-generation loops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvicorn
from bench.wire_clients import HttpConnection
from fastapi import status

from trainyard.cli.embedded import free_local_port
from trainyard.cli.embedded_services import find_temporal_cli
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard.stream.gc_policy import tune_for_serving
from trainyard.stream.ws_protocol import SendNowWebSocketProtocol

BACKEND_DIR = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/trainyard_bench"
REDIS_URL = "redis://127.0.0.1:6379/0"
INTERNAL_TOKEN = "bench-internal-token"
CALLBACK_SECRET = "bench-callback-secret"
INTERNAL = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
HOST = "127.0.0.1"
WARM_UP_EVENTS = 3


def report_gc_pauses(over_s: float = 0.01) -> None:
    """Print each collection that stops this process longer than `over_s` (to stderr), so a
    latency tail can be told apart from garbage-collector pauses."""
    started = 0.0

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        elif (pause := time.perf_counter() - started) > over_s:
            print(
                f"  (API: generation-{info['generation']} GC pause {pause * 1000:.0f} ms)",
                file=sys.stderr,
                flush=True,
            )

    gc.callbacks.append(callback)


def serve() -> None:
    """The API with one extra no-op route, in this benchmark's own app instance only."""
    settings = BackendSettings()
    app = create_app(settings)

    @app.post("/bench/noop", status_code=status.HTTP_202_ACCEPTED)
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    tune_for_serving()  # as trainyard.api does
    report_gc_pauses()  # from now on: the start-up collection above is not a serving pause
    uvicorn.run(
        app, host=HOST, port=settings.api_port, log_level="warning", ws=SendNowWebSocketProtocol
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # uvicorn and the Temporal dev server stop cleanly
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def temporal_dev_server() -> Iterator[str]:
    """A throw-away Temporal dev server as a child process (the API needs one to submit jobs)."""
    port = free_local_port()
    process = subprocess.Popen(
        [
            *(find_temporal_cli(), "server", "start-dev", "--headless", "--ip", HOST),
            *("--port", str(port), "--log-level", "error"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "the Temporal dev server")
        yield f"{HOST}:{port}"
    finally:
        stop(process)


async def fresh_postgres_database() -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute("DROP DATABASE IF EXISTS trainyard_bench WITH (FORCE)")
        await admin.execute("CREATE DATABASE trainyard_bench")
    finally:
        await admin.close()


@dataclass(frozen=True)
class ApiProcess:
    port: int
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds the API process has used so far, all its threads (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def api_process(
    temporal_address: str,
    database: str,
    redis: bool,
    data_dir: Path,
    settings: dict[str, str] | None = None,
    backend_dir: Path = BACKEND_DIR,
) -> AsyncIterator[ApiProcess]:
    """The API as its own process (`settings`: more TRAINYARD_* variables; `backend_dir`: the
    checkout whose code it runs, for comparisons with an earlier commit)."""
    if database == "postgresql":
        await fresh_postgres_database()
        database_url = POSTGRES_URL
    else:
        database_url = f"sqlite+aiosqlite:///{data_dir / f'{uuid.uuid4().hex}.db'}"
    port = free_local_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")},
        "TRAINYARD_DATA_DIR": str(data_dir),
        "TRAINYARD_DATABASE_URL": database_url,
        "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
        "TRAINYARD_TASK_QUEUE": f"bench-{uuid.uuid4().hex}",
        "TRAINYARD_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "TRAINYARD_CALLBACK_SECRET": CALLBACK_SECRET,
        "TRAINYARD_API_PORT": str(port),
        "TRAINYARD_STREAM_QUEUE_SIZE": "10000",
        # Benches measure throughput: the rate limits would cap it (ignored before issue 20).
        "TRAINYARD_RATE_LIMITS": '{"submit": "off", "chat": "off", "upload": "off"}',
        # Benches make their datasets in the data folder or beside it.
        "TRAINYARD_DATASET_ROOTS": json.dumps([str(data_dir), str(data_dir.parent)]),
    }
    if redis:
        env["TRAINYARD_REDIS_URL"] = REDIS_URL
        env["TRAINYARD_REDIS_CHANNEL_PREFIX"] = f"bench-{uuid.uuid4().hex}"
    env.update(settings or {})
    if backend_dir != BACKEND_DIR:  # its modules before the installed ones
        workflows = backend_dir.parents[1] / "workflows"
        env["PYTHONPATH"] = f"{backend_dir}{os.pathsep}{workflows}"
    command = [sys.executable, "-m", "bench.live_paths", "serve"]
    process = subprocess.Popen(command, env=env, cwd=backend_dir)  # noqa: ASYNC220
    try:
        await asyncio.to_thread(wait_for_port, port, process, "the benchmark API")
        yield ApiProcess(port, process.pid)
    finally:
        await asyncio.to_thread(stop, process)


async def call(
    connection: HttpConnection,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> dict[str, object]:
    raw = json.dumps(body).encode() if body is not None else b""
    code, answer = await connection.request("POST", path, raw, headers)
    if code != expect:
        raise RuntimeError(f"POST {path}: {code} {answer[:300]!r}")
    parsed: dict[str, object] = json.loads(answer)
    return parsed


async def running_job(connection: HttpConnection, dataset: str) -> tuple[str, dict[str, str]]:
    """A job and its attempt's callback headers (as the worker would get them)."""
    body = {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset,
        "task": "detect",
        "epochs": 3,
        "imgsz": 64,
        "batch": 4,
        "gpus": 0,
        "hyperparameters": {},
    }
    job_id = str((await call(connection, "/v1/jobs", body, expect=201))["id"])
    # The attempt's output (a backend before issue 20 ignores the body).
    output = {"output_dir": f"/bench/jobs/{job_id}/attempt-1"}
    grant = await call(
        connection, f"/internal/v1/jobs/{job_id}/attempts/1", output, headers=INTERNAL
    )
    return job_id, {"Authorization": f"Bearer {grant['callback_token']}"}


def heartbeat_body(index: int, timed: bool = True) -> bytes:
    """A typical heartbeat; `sent_at` is taken now, right before it is sent (untimed ones
    have none, and the stream clients ignore them)."""
    metrics = {"loss": 0.5, "map50": 0.25}
    if timed:
        metrics["sent_at"] = time.time()
    return json.dumps({"epoch": index % 100 + 1, "epochs": 100, "metrics": metrics}).encode()


Request = Callable[[HttpConnection, int], Awaitable[None]]


@dataclass(frozen=True)
class Phase:
    rate: float  # requests/s
    api_cpu_s: float  # the API's CPU seconds per request


async def closed_loop_phase(
    connections: list[HttpConnection], request: Request, s: float, api: ApiProcess
) -> Phase:
    """`closed_loop_rate`, and the API's CPU per request meanwhile."""
    cpu_before, started = api.cpu_s(), time.perf_counter()
    rate = await closed_loop_rate(connections, request, s)
    requests = rate * (time.perf_counter() - started)
    return Phase(rate, (api.cpu_s() - cpu_before) / requests)


async def closed_loop_rate(connections: list[HttpConnection], request: Request, s: float) -> float:
    """Requests/s with one request always in flight on each connection."""
    done = 0
    deadline = time.perf_counter() + s

    async def worker(connection: HttpConnection, index: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await request(connection, index)
            done += 1
            index += len(connections)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(connections)))
    return done / (time.perf_counter() - started)


async def paced_latencies(
    connections: list[HttpConnection], request: Request, rate: float, s: float
) -> list[float]:
    """Open loop at `rate`: each request timed from just before it is written."""
    idle = asyncio.Queue[HttpConnection]()
    for connection in connections:
        idle.put_nowait(connection)
    latencies: list[float] = []

    async def one(index: int) -> None:
        connection = await idle.get()
        started = time.perf_counter()
        await request(connection, index)
        latencies.append(time.perf_counter() - started)
        idle.put_nowait(connection)

    tasks = []
    begin = time.perf_counter()
    for index in range(int(rate * s)):
        await asyncio.sleep(max(begin + index / rate - time.perf_counter(), 0))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return latencies


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
