"""WS /v1/jobs/{id}/stream over a real uvicorn server: replay, live relay, close on the end,
reconnection without gaps or duplicates, slow subscribers, and the stream without the
server's send_now."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard.stream.gc_policy import SERVING_THRESHOLDS

from .conftest import LiveServer, make_settings, run_server
from .support import (
    DONE_SUCCEEDED,
    INTERNAL_HEADERS,
    callback,
    checkpoint_saved,
    events,
    heartbeat,
    key_of_another_project,
    move,
    start_attempt,
    submit,
)

Frames = list[dict[str, Any]]


def stream_url(server: LiveServer, job_id: str, after_seq: int = 0) -> str:
    return f"{server.ws_url}/v1/jobs/{job_id}/stream?after_seq={after_seq}"


async def receive(ws: ClientConnection, count: int) -> Frames:
    return [json.loads(await asyncio.wait_for(ws.recv(), timeout=10)) for _ in range(count)]


async def receive_until_closed(ws: ClientConnection) -> tuple[Frames, int | None, str | None]:
    """Every frame until the server closes; and its close code and reason."""
    frames: Frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
    except ConnectionClosed:
        pass
    return frames, ws.close_code, ws.close_reason


async def finish(api: httpx.AsyncClient, job_id: str) -> None:
    """A short successful run: attempt, two heartbeats, a checkpoint, done."""
    token = await start_attempt(api, job_id)
    for body in (heartbeat(1, loss=1.0), heartbeat(2, loss=0.5)):
        assert (await callback(api, job_id, "heartbeat", token, body)).status_code == 202
    assert (await callback(api, job_id, "event", token, checkpoint_saved(2))).status_code == 202
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 202


async def test_the_stream_replays_after_seq_then_relays_live_and_closes_after_the_end(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)
    for state in ("VALIDATING", "STARTING"):
        assert (await move(live_api, job["id"], state)).status_code == 200

    async with connect(stream_url(live_server, job["id"], after_seq=1)) as ws:
        replayed = await receive(ws, 2)
        await finish(live_api, job["id"])
        live, code, reason = await receive_until_closed(ws)

    assert [(e["seq"], e["data"]["to"]) for e in replayed] == [(2, "VALIDATING"), (3, "STARTING")]
    assert [e["type"] for e in live] == [
        "attempt",
        "state",
        "heartbeat",
        "heartbeat",
        "checkpoint_saved",
        "done",
        "state",
    ]
    assert live[-1]["data"]["to"] == "SUCCEEDED"
    assert (code, reason) == (1000, "job finished")
    # Frames are exactly the stored events, as GET /events shows them.
    assert replayed + live == await events(live_api, job["id"], after_seq=1)


async def test_a_finished_job_is_replayed_and_closed_at_once(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)
    await finish(live_api, job["id"])
    stored = await events(live_api, job["id"])

    async with connect(stream_url(live_server, job["id"])) as ws:
        frames, code, _ = await receive_until_closed(ws)
    async with connect(stream_url(live_server, job["id"], after_seq=stored[-1]["seq"])) as ws:
        nothing_left, code_at_end, _ = await receive_until_closed(ws)

    assert frames == stored
    assert code == 1000
    assert (nothing_left, code_at_end) == ([], 1000)


async def test_reconnecting_with_after_seq_gives_no_gap_and_no_duplicate(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)
    token = await start_attempt(live_api, job["id"])
    seen: Frames = []

    async with connect(stream_url(live_server, job["id"])) as ws:
        seen += await receive(ws, 2)  # submitted, attempt
        assert (
            await callback(live_api, job["id"], "heartbeat", token, heartbeat(1))
        ).status_code == 202
        seen += await receive(ws, 2)  # RUNNING, heartbeat
    # While nobody watches:
    assert (
        await callback(live_api, job["id"], "heartbeat", token, heartbeat(2))
    ).status_code == 202
    async with connect(stream_url(live_server, job["id"], after_seq=seen[-1]["seq"])) as ws:
        seen += await receive(ws, 1)  # the heartbeat missed while away
        assert (
            await callback(live_api, job["id"], "done", token, DONE_SUCCEEDED)
        ).status_code == 202
        rest, code, _ = await receive_until_closed(ws)
    seen += rest

    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen == await events(live_api, job["id"])
    assert code == 1000


async def test_every_client_of_every_job_gets_that_jobs_own_stored_events(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # Frames are serialised once per event and shared by the clients of a job: two jobs whose
    # events have the same seqs must still each get their own.
    jobs = [await submit(live_api, job_body) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(connect(stream_url(live_server, job["id"])))
            for job in jobs
            for _ in range(2)
        ]
        for ws in sockets:
            assert (await receive(ws, 1))[0]["seq"] == 1
        for job in jobs:
            await finish(live_api, job["id"])
        received = [await receive_until_closed(ws) for ws in sockets]

    for index, (frames, code, _) in enumerate(received):
        job_id = jobs[index // 2]["id"]
        assert code == 1000
        assert {frame["job_id"] for frame in frames} == {job_id}
        assert frames == await events(live_api, job_id, after_seq=1)


async def test_clients_with_and_without_compression_get_the_same_frames(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # Without extensions the fan-out writes one shared frame; with permessage-deflate (what
    # browsers ask for) each connection compresses its own.
    job = await submit(live_api, job_body)
    async with (
        connect(stream_url(live_server, job["id"]), compression=None) as plain,
        connect(stream_url(live_server, job["id"]), compression="deflate") as deflated,
    ):
        assert plain.protocol.extensions == []
        assert len(deflated.protocol.extensions) == 1
        for ws in (plain, deflated):
            await receive(ws, 1)
        await finish(live_api, job["id"])
        received = [await receive_until_closed(ws) for ws in (plain, deflated)]

    stored = await events(live_api, job["id"], after_seq=1)
    assert [(frames, code) for frames, code, _ in received] == [(stored, 1000)] * 2


async def test_concurrent_writers_reach_a_live_stream_in_seq_order_exactly_once(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)

    async def worker_event(n: int) -> None:
        response = await live_api.post(
            f"/internal/v1/jobs/{job['id']}/events",
            json={"type": "log", "message": str(n)},
            headers=INTERNAL_HEADERS,
        )
        assert response.status_code == 202

    async with connect(stream_url(live_server, job["id"])) as ws:
        assert (await receive(ws, 1))[0]["seq"] == 1
        await asyncio.gather(*(worker_event(n) for n in range(20)))
        assert (await move(live_api, job["id"], "FAILED", "enough")).status_code == 200
        frames, code, _ = await receive_until_closed(ws)

    assert [e["seq"] for e in frames] == list(range(2, 23))
    assert code == 1000


async def test_an_unknown_job_closes_the_stream_with_4404(live_server: LiveServer) -> None:
    async with connect(stream_url(live_server, "job_nothing")) as ws:
        frames, code, _ = await receive_until_closed(ws)

    assert (frames, code) == ([], 4404)


async def test_the_stream_of_another_projects_job_is_as_unknown_as_a_missing_one(
    settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    app = create_app(settings)
    with run_server(app) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as api:
            job = await submit(api, job_body)
            outsider = await key_of_another_project(api)
        async with connect(stream_url(server, job["id"]), additional_headers=outsider) as ws:
            frames, code, _ = await receive_until_closed(ws)

    assert (frames, code) == ([], 4404)


async def test_a_stream_refused_for_a_bad_credential_closes_with_4401(
    live_server: LiveServer,
) -> None:
    bad = {"Authorization": "Bearer tyk_00000000_not-a-key"}
    async with connect(stream_url(live_server, "job_nothing"), additional_headers=bad) as ws:
        frames, code, _ = await receive_until_closed(ws)

    assert (frames, code) == ([], 4401)


@pytest.fixture
def small_backlog_server(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path / "data", temporal_address, stream_queue_size=4, **backend_tier
    )
    # Small kernel buffers on both ends: a client that stops reading fills them in a few frames.
    with run_server(create_app(settings), send_buffer=8192) as server:
        yield server


class StalledReader:
    """A WebSocket client that stops reading after the handshake (a tab in the background, a
    phone on a bad link): a raw socket with a tiny receive buffer, spoken to with websockets'
    sans-I/O client, read only when the test says so."""

    def __init__(self, server: LiveServer, path: str) -> None:
        host, port = server.http_url.removeprefix("http://").split(":")
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._sock.connect((host, int(port)))
        self._sock.settimeout(10)
        self._protocol = ClientProtocol(parse_uri(f"{server.ws_url}{path}"))
        self._protocol.send_request(self._protocol.connect())
        self._sock.sendall(b"".join(self._protocol.data_to_send()))

    def read(self, frames: int | None = None) -> Frames:
        """`frames` text frames, or every one until the server closes (frames=None)."""
        received: Frames = []
        while frames is None or len(received) < frames:
            data = self._sock.recv(65536)
            if data:
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
            for event in self._protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    received.append(json.loads(bytes(event.data)))
            self._sock.sendall(b"".join(self._protocol.data_to_send()))  # pongs, close reply
            if not data or self._protocol.close_code is not None:
                break
        return received

    @property
    def close(self) -> tuple[int | None, str | None]:
        return self._protocol.close_code, self._protocol.close_reason

    def shut(self) -> None:
        self._sock.close()


async def test_a_client_that_stops_reading_is_closed_with_1013_while_the_others_keep_up(
    small_backlog_server: LiveServer, job_body: dict[str, Any]
) -> None:
    server = small_backlog_server
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as api:
        job = await submit(api, job_body)
        token = await start_attempt(api, job["id"])
        slow = StalledReader(server, f"/v1/jobs/{job['id']}/stream")
        try:
            first = await asyncio.to_thread(slow.read, 2)
            async with connect(stream_url(server, job["id"])) as fast:
                seen_by_fast = await receive(fast, 2)
                # ~1 MB of events while the slow client reads nothing: far more than its
                # buffers and its backlog hold.
                for n in range(120):
                    body = {"type": "note", "message": f"{n} " + "x" * 9000}
                    response = await callback(api, job["id"], "event", token, body)
                    assert response.status_code == 202
                seen_by_fast += await receive(fast, 120)  # nobody waited for the slow one
            more = await asyncio.to_thread(slow.read)
        finally:
            slow.shut()
        assert seen_by_fast == await events(api, job["id"])
        code, reason = slow.close
        assert code == 1013
        last = (first + more)[-1]["seq"]
        assert last < seen_by_fast[-1]["seq"]
        assert reason == f"too slow; reconnect with after_seq={last}"

        async with connect(stream_url(server, job["id"], after_seq=last)) as ws:
            done = await callback(api, job["id"], "done", token, DONE_SUCCEEDED)
            assert done.status_code == 202
            rest, final_code, _ = await receive_until_closed(ws)

        assert first + more + rest == await events(api, job["id"])
        assert final_code == 1000


async def test_without_the_servers_send_now_every_client_relays_from_its_own_task(
    tmp_path: Path, temporal_address: str, job_body: dict[str, Any], backend_tier: dict[str, object]
) -> None:
    # Served by plain uvicorn (`uvicorn trainyard.main:app`): same stream, no fast path.
    app = create_app(make_settings(tmp_path / "data", temporal_address, **backend_tier))
    with run_server(app, ws="websockets-sansio") as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as api:
            job = await submit(api, job_body)
            async with contextlib.AsyncExitStack() as stack:
                sockets = [
                    await stack.enter_async_context(connect(stream_url(server, job["id"])))
                    for _ in range(3)
                ]
                for ws in sockets:
                    await receive(ws, 1)
                await finish(api, job["id"])
                received = [await receive_until_closed(ws) for ws in sockets]
            stored = await events(api, job["id"])

    for frames, code, _ in received:
        assert (frames, code) == (stored[1:], 1000)


async def test_a_client_that_leaves_a_quiet_job_releases_its_subscription(
    tmp_path: Path, temporal_address: str, job_body: dict[str, Any], backend_tier: dict[str, object]
) -> None:
    app = create_app(make_settings(tmp_path / "data", temporal_address, **backend_tier))
    with run_server(app) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as api:
            job = await submit(api, job_body)
            async with (
                connect(stream_url(server, job["id"])) as ws,
                connect(stream_url(server, job["id"])) as other,
            ):
                await receive(ws, 1)
                await receive(other, 1)
                # Two clients, one bus subscription: the job's fan-out serves both.
                assert app.state.runtime.bus.subscriber_count(job["id"]) == 1
                assert app.state.runtime.fanout.member_count(job["id"]) == 2
            for _ in range(200):
                if app.state.runtime.bus.subscriber_count(job["id"]) == 0:
                    break
                await asyncio.sleep(0.02)
            assert app.state.runtime.bus.subscriber_count(job["id"]) == 0
            assert app.state.runtime.fanout.member_count(job["id"]) == 0


async def test_a_bad_after_seq_is_refused_with_a_policy_close(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)

    async with connect(f"{live_server.ws_url}/v1/jobs/{job['id']}/stream?after_seq=-1") as ws:
        frames, code, _ = await receive_until_closed(ws)

    assert (frames, code) == ([], 1008)
    assert ws.close_reason is not None
    assert ws.close_reason.startswith("after_seq: ")


def test_a_serving_process_keeps_its_start_up_heap_out_of_garbage_collections() -> None:
    # Its own process: freezing and re-tuning the collector would outlive this test here.
    probe = (
        "import gc; from trainyard.stream.gc_policy import tune_for_serving; "
        "tune_for_serving(); print(gc.get_freeze_count(), *gc.get_threshold())"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen, thresholds = int(output[0]), tuple(int(value) for value in output[1:])
    assert frozen > 1000
    assert thresholds == SERVING_THRESHOLDS
