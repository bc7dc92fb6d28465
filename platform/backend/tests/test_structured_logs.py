"""Structured logs (trainyard_workflows/telemetry/logs.py): the real `trainyard-api` process
writes JSON lines that name the job and attempt of a callback and the caller of a request, and
redacts stream tickets; the console format stays readable; the trace of the recording span is on
each line; a credential JSON escapes is still found by the leak scan."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from websockets.asyncio.client import connect

from trainyard.cli.embedded import free_local_port
from trainyard_testing.credential_leaks import leaks_in, remember_credential
from trainyard_workflows.telemetry.logs import bind_caller, bind_job, configure_logging

from .support import CALLBACK_SECRET, INTERNAL_TOKEN, heartbeat, move, start_attempt, submit

REQUIRED_FIELDS = {"timestamp", "level", "logger", "message", "service"}


class ApiProcess:
    """`python -m trainyard.api` on a free port, its stdout and stderr in one file."""

    def __init__(self, tmp_path: Path, temporal_address: str, log_format: str) -> None:
        self.port = free_local_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"api-{log_format}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")},
            "TRAINYARD_DATA_DIR": str(tmp_path / "data"),
            "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
            "TRAINYARD_API_PORT": str(self.port),
            "TRAINYARD_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "TRAINYARD_CALLBACK_SECRET": CALLBACK_SECRET,
            "TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path)]),
            "TRAINYARD_LOG_FORMAT": log_format,
        }

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@pytest.fixture
def api_process(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_address: str
) -> Iterator[ApiProcess]:
    api = ApiProcess(tmp_path, temporal_address, request.param)
    with api.log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "trainyard.api"], env=api.env, stdout=output, stderr=output
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    pytest.fail(f"trainyard-api exited with {process.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail("trainyard-api did not answer within 60 s")
                try:
                    httpx.get(f"{api.url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield api
        finally:
            process.terminate()
            process.wait(timeout=15)


async def _a_heartbeat(api: ApiProcess, job_body: dict[str, Any]) -> dict[str, Any]:
    """Submit a job, start its first attempt and send one heartbeat; returns the job."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        job = await submit(client, job_body)
        assert (await move(client, job["id"], "STARTING")).status_code == 200
        token = await start_attempt(client, job["id"])
        beat = await client.post(
            f"/v1/jobs/{job['id']}/heartbeat",
            json=heartbeat(1),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert beat.status_code == 202, beat.text
    return job


@pytest.mark.parametrize("api_process", ["json"], indirect=True)
async def test_the_api_writes_json_lines_naming_the_callbacks_job_and_attempt(
    api_process: ApiProcess, job_body: dict[str, Any]
) -> None:
    job = await _a_heartbeat(api_process, job_body)

    records = [json.loads(line) for line in api_process.lines()]  # every line is JSON
    assert records
    assert all(record.keys() >= REQUIRED_FIELDS for record in records)
    assert {record["service"] for record in records} == {"trainyard-api"}
    assert any(r["message"] == "Application startup complete." for r in records)
    [beat] = [r for r in records if f"/v1/jobs/{job['id']}/heartbeat" in r["message"]]
    assert beat["logger"] == "uvicorn.access"
    assert (beat["job_id"], beat["attempt"]) == (job["id"], 1)
    [submitted] = [r for r in records if '"POST /v1/jobs HTTP/1.1" 201' in r["message"]]
    assert submitted["user"]
    assert submitted["project"] == job["project_id"]
    assert "job_id" not in submitted  # bound per request: nothing left from another one
    # Logged inside the submit request's server span, which starts the job's trace.
    assert submitted["trace_id"] == job["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", submitted["span_id"])


@pytest.mark.parametrize("api_process", ["json"], indirect=True)
async def test_a_stream_ticket_is_redacted_in_json_access_lines(
    api_process: ApiProcess, job_body: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=api_process.url, timeout=30) as client:
        job = await submit(client, job_body)
        answer = await client.post("/v1/stream/tickets", json={"job_id": job["id"]})
        assert answer.status_code == 201, answer.text
        ticket = answer.json()["ticket"]
        remember_credential(ticket, "stream ticket")
    ws_url = f"ws://127.0.0.1:{api_process.port}/v1/jobs/{job['id']}/stream?ticket={ticket}"
    async with connect(ws_url) as ws:
        await ws.recv()

    records = [json.loads(line) for line in api_process.lines()]
    handshakes = [r["message"] for r in records if "/stream?" in r["message"]]
    assert handshakes
    assert all("ticket=<redacted>" in message for message in handshakes)
    assert ticket not in api_process.log.read_text()


@pytest.mark.parametrize("api_process", ["console"], indirect=True)
async def test_the_console_format_is_readable_and_names_the_job(
    api_process: ApiProcess, job_body: dict[str, Any]
) -> None:
    job = await _a_heartbeat(api_process, job_body)

    lines = api_process.lines()
    assert not any(line.startswith("{") for line in lines)
    [beat] = [line for line in lines if f"/v1/jobs/{job['id']}/heartbeat" in line]
    assert "[info     ]" in beat
    assert f"job_id={job['id']}" in beat
    assert "attempt=1" in beat
    assert "service=trainyard-api" in beat


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """configure_logging into a string; the root logger's handlers and level put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers, root.level = handlers, level


def test_a_line_logged_in_a_recording_span_carries_its_trace_and_span_ids(
    captured: io.StringIO,
) -> None:
    configure_logging("trainyard-test", "info", "json", stream=captured)
    tracer = TracerProvider().get_tracer("test")

    logging.getLogger("trainyard.test").info("outside any span")
    with tracer.start_as_current_span("inside") as span:
        logging.getLogger("trainyard.test").info("inside a span")

    outside, inside = (json.loads(line) for line in captured.getvalue().splitlines())
    assert "trace_id" not in outside
    assert "span_id" not in outside
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")


def test_debug_reaches_our_loggers_and_not_the_libraries(captured: io.StringIO) -> None:
    configure_logging("trainyard-test", "debug", "console", stream=captured)

    logging.getLogger("trainyard.test").debug("ours")
    logging.getLogger("aiosqlite").debug("a statement and its parameters")
    logging.getLogger("temporalio").info("a library's info")

    text = captured.getvalue()
    assert "ours" in text
    assert "a statement" not in text
    assert "a library's info" in text


async def test_bound_fields_stay_with_the_task_that_bound_them(captured: io.StringIO) -> None:
    configure_logging("trainyard-test", "info", "json", stream=captured)

    async def request(job_id: str) -> None:
        bind_job(job_id, 2)
        bind_caller("user_1", "proj_1")
        await asyncio.sleep(0)
        logging.getLogger("trainyard.test").info("in %s", job_id)

    await asyncio.gather(request("job_a"), request("job_b"))
    logging.getLogger("trainyard.test").info("after")

    records = {r["message"]: r for r in map(json.loads, captured.getvalue().splitlines())}
    assert records["in job_a"]["job_id"] == "job_a"
    assert records["in job_b"]["job_id"] == "job_b"
    assert records["in job_b"]["user"] == "user_1"
    assert records["in job_b"]["project"] == "proj_1"
    assert "job_id" not in records["after"]


@pytest.mark.parametrize(
    "credential",
    [
        'a-token-with-"quotes"-and-\\-inside',
        "a-token-with-non-ascii-é-ü-inside",
        "tab\there-0123456",
    ],
)
def test_a_credential_json_escapes_is_still_found_in_a_json_line(
    captured: io.StringIO, credential: str
) -> None:
    configure_logging("trainyard-test", "info", "json", stream=captured)
    logging.getLogger("trainyard.test").warning("leaked %s", credential)

    written = captured.getvalue().encode()
    assert credential.encode() not in written  # escaped: a plain search would miss it
    assert leaks_in("api.log", written, {credential: "token"})
