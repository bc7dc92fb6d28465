"""Two real API processes (`python -m trainyard.api`) sharing PostgreSQL and Redis: a user sees
the same live stream whichever replica they are connected to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from trainyard.cli.embedded import free_local_port

from .conftest import REDIS_URL, empty_postgres_database, run_aside
from .support import CALLBACK_SECRET, DONE_SUCCEEDED, INTERNAL_TOKEN, heartbeat
from .test_redis_bus import kill_named_client


@dataclass(frozen=True)
class Replica:
    http_url: str
    ws_url: str
    process: subprocess.Popen[bytes]
    channel_prefix: str

    @property
    def relay_client_name(self) -> str:
        """The name its Redis pub/sub connection carries (see RedisBus.client_name)."""
        return f"trainyard-relay-{self.channel_prefix}-{self.process.pid}"


@pytest.fixture
def replicas(
    tmp_path: Path, temporal_address: str, postgres_database: str
) -> Iterator[tuple[Replica, Replica]]:
    run_aside(empty_postgres_database(postgres_database))
    prefix = f"test-{uuid.uuid4().hex}"
    started: list[Replica] = []
    try:
        for name in ("a", "b"):
            port = free_local_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")},
                "TRAINYARD_DATA_DIR": str(tmp_path / name),
                "TRAINYARD_DATABASE_URL": postgres_database,
                "TRAINYARD_REDIS_URL": REDIS_URL,
                "TRAINYARD_REDIS_CHANNEL_PREFIX": prefix,
                "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
                "TRAINYARD_TASK_QUEUE": f"test-{uuid.uuid4().hex}",
                "TRAINYARD_INTERNAL_TOKEN": INTERNAL_TOKEN,
                "TRAINYARD_CALLBACK_SECRET": CALLBACK_SECRET,
                "TRAINYARD_API_PORT": str(port),
                "TRAINYARD_LOG_LEVEL": "warning",
                "TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path)]),
            }
            process = subprocess.Popen([sys.executable, "-m", "trainyard.api"], env=env)
            urls = (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
            started.append(Replica(*urls, process, prefix))
        for replica in started:
            wait_ready(replica)
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            replica.process.wait(timeout=15)


def wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            pytest.fail(f"the API replica exited with {replica.process.returncode}")
        try:
            if httpx.get(f"{replica.http_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the API replica did not start within 30 s")


async def receive_seqs(ws: ClientConnection, count: int) -> list[int]:
    return [json.loads(await ws.recv(decode=True))["seq"] for _ in range(count)]


async def beat(client: httpx.AsyncClient, job_id: str, token: str, epoch: int) -> None:
    response = await client.post(
        f"/v1/jobs/{job_id}/heartbeat",
        json=heartbeat(epoch, epochs=100),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text


async def test_a_stream_on_one_replica_shows_callbacks_sent_to_the_other_without_gaps(
    replicas: tuple[Replica, Replica], job_body: dict[str, Any]
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.http_url, timeout=30) as api_a,
        httpx.AsyncClient(base_url=b.http_url, timeout=30) as api_b,
    ):
        job = (await api_a.post("/v1/jobs", json=job_body)).json()
        job_id = job["id"]
        attempt = await api_b.post(
            f"/internal/v1/jobs/{job_id}/attempts/1",
            json={"output_dir": "/out"},
            headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        token = attempt.json()["callback_token"]

        async with connect(f"{a.ws_url}/v1/jobs/{job_id}/stream") as ws:
            first = await receive_seqs(ws, 2)  # submitted + attempt started
            for epoch in range(1, 11):
                await beat(api_b, job_id, token, epoch)
            # 10 heartbeats + the RUNNING transition, relayed by A from B's publishes.
            first += await receive_seqs(ws, 11)
        assert first == list(range(1, 14))

        # Meanwhile more arrives; the user reconnects to the OTHER replica from where they were.
        for epoch in range(11, 16):
            await beat(api_b, job_id, token, epoch)
        async with connect(f"{b.ws_url}/v1/jobs/{job_id}/stream?after_seq={first[-1]}") as ws:
            rest = await receive_seqs(ws, 5)
            # Redis dropping B's pub/sub connection loses nothing either.
            await kill_named_client(b.relay_client_name)
            for epoch in range(16, 21):
                await beat(api_a, job_id, token, epoch)
            done = await api_a.post(
                f"/v1/jobs/{job_id}/done",
                json=DONE_SUCCEEDED,
                headers={"Authorization": f"Bearer {token}"},
            )
            assert done.status_code == 202
            rest += [json.loads(m)["seq"] async for m in ws]

        assert ws.close_code == 1000
        stored = (await api_a.get(f"/v1/jobs/{job_id}/events", params={"limit": 500})).json()
        assert first + rest == [e["seq"] for e in stored["items"]]
        assert first + rest == list(range(1, len(first + rest) + 1))
