"""GET /metrics of the API (observability/): real traffic through the real app, on SQLite and
PostgreSQL, read back from the exposition text; promtool lints what is served."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import update
from websockets.asyncio.client import connect

from trainyard.cli.embedded import free_local_port
from trainyard.jobs.models import Job, JobEvent
from trainyard.runtime import Runtime
from trainyard.stream.redis import RedisBus
from trainyard_testing.prometheus import promtool_check_metrics

from ..conftest import LiveServer
from ..support import (
    DONE_SUCCEEDED,
    INTERNAL_HEADERS,
    callback,
    heartbeat,
    move,
    start_attempt,
    submit,
)
from ..test_internal_port import serve_on_two_ports
from .metrics_text import scrape

FRAMEWORK = "ultralytics"  # job_body's

# Every name of the contract (docs/operations.md, "Metrics") the API serves.
API_METRICS = (
    "trainyard_jobs",
    "trainyard_job_submissions_total",
    "trainyard_job_queue_wait_seconds",
    "trainyard_job_run_duration_seconds",
    "trainyard_jobs_finished_total",
    "trainyard_callbacks_total",
    "trainyard_callback_duration_seconds",
    "trainyard_stream_clients",
    "trainyard_stream_relay_latency_seconds",
    "trainyard_bus_publish_failures_total",
    "trainyard_project_gpu_seconds_total",
    "trainyard_run_gpu_utilization_ratio",
    "trainyard_running_job_heartbeat_age_seconds",
)


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _running_job(api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str]:
    """A job whose trainer sent its first heartbeat: (job id, callback token)."""
    job = await submit(api, body)
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"])
    assert (await callback(api, job["id"], "heartbeat", token, heartbeat(1))).status_code == 202
    return job["id"], token


async def test_the_metrics_of_a_served_job_pass_promtool_and_name_every_metric(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id, token = await _running_job(api, job_body)
    body = {"type": "note", "message": "hello", "data": {}}
    assert (await callback(api, job_id, "event", token, body)).status_code == 202
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 202

    metrics = await scrape(api)

    promtool_check_metrics(metrics.text)
    declared = {line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE")}
    assert set(API_METRICS) <= declared


async def test_a_submission_is_counted_once_and_a_replayed_one_not_at_all(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    before = await scrape(api)
    key = {"Idempotency-Key": "metrics-once"}
    first = await api.post("/v1/jobs", json=job_body, headers=key)
    replay = await api.post("/v1/jobs", json=job_body, headers=key)
    assert first.status_code == 201
    assert replay.json()["id"] == first.json()["id"]

    after = await scrape(api)

    name = "trainyard_job_submissions_total"
    assert after.value(name, framework=FRAMEWORK) - before.value(name, framework=FRAMEWORK) == 1
    assert after.value("trainyard_jobs", state="PENDING", framework=FRAMEWORK) == 1


async def test_callbacks_are_counted_by_kind_and_code_and_timed(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    before = await scrape(api)
    job_id, token = await _running_job(api, job_body)
    assert (await callback(api, job_id, "heartbeat", token, heartbeat(2))).status_code == 202
    assert (await callback(api, job_id, "heartbeat", None, heartbeat(2))).status_code == 401
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 202
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 409

    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("trainyard_callbacks_total", kind="heartbeat", code="202") == 2
    assert moved("trainyard_callbacks_total", kind="heartbeat", code="401") == 1
    assert moved("trainyard_callbacks_total", kind="done", code="202") == 1
    assert moved("trainyard_callbacks_total", kind="done", code="409") == 1
    assert moved("trainyard_callbacks_total", kind="event") == 0
    assert moved("trainyard_callback_duration_seconds_count", kind="heartbeat") == 3
    assert moved("trainyard_callback_duration_seconds_sum", kind="heartbeat") > 0


async def test_queue_wait_is_observed_once_per_job_and_the_end_with_its_reason(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    before = await scrape(api)
    job_id, token = await _running_job(api, job_body)
    for epoch in (2, 3):
        assert (
            await callback(api, job_id, "heartbeat", token, heartbeat(epoch))
        ).status_code == 202
    running = await scrape(api)
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 202
    after = await scrape(api)

    wait = "trainyard_job_queue_wait_seconds_count"
    assert running.value(wait, framework=FRAMEWORK) - before.value(wait, framework=FRAMEWORK) == 1
    assert after.value(wait, framework=FRAMEWORK) == running.value(wait, framework=FRAMEWORK)
    finished = "trainyard_jobs_finished_total"
    labels = {"framework": FRAMEWORK, "state": "SUCCEEDED", "reason": "succeeded"}
    assert after.value(finished, **labels) - running.value(finished, **labels) == 1
    ran = "trainyard_job_run_duration_seconds_count"
    ended = {"framework": FRAMEWORK, "state": "SUCCEEDED"}
    assert after.value(ran, **ended) - before.value(ran, **ended) == 1
    assert after.value("trainyard_jobs", state="SUCCEEDED", framework=FRAMEWORK) == 1
    assert after.value("trainyard_jobs", state="RUNNING") == 0


async def test_a_preempted_job_running_again_adds_no_second_queue_wait(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    before = await scrape(api)
    job_id, _ = await _running_job(api, job_body)
    requeue = {"attempt": 1, "by": "job_urgent"}
    response = await api.post(
        f"/internal/v1/jobs/{job_id}/requeue", json=requeue, headers=INTERNAL_HEADERS
    )
    assert response.status_code == 200, response.text
    assert (await move(api, job_id, "STARTING")).status_code == 200
    second = await start_attempt(api, job_id, 2)
    assert (await callback(api, job_id, "heartbeat", second, heartbeat(2))).status_code == 202
    after = await scrape(api)

    wait = "trainyard_job_queue_wait_seconds_count"
    assert after.value(wait, framework=FRAMEWORK) - before.value(wait, framework=FRAMEWORK) == 1


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        ("worker", "dataset_invalid"),
        ("trainer", "trainer_failed"),
    ],
)
async def test_a_failed_job_is_counted_with_a_bounded_reason(
    api: httpx.AsyncClient, job_body: dict[str, Any], ending: str, reason: str
) -> None:
    before = await scrape(api)
    if ending == "worker":
        job = await submit(api, job_body)
        text = "dataset validation failed: train/ has no images"
        assert (await move(api, job["id"], "FAILED", text)).status_code == 200
    else:
        job_id, token = await _running_job(api, job_body)
        failed = {"status": "failed", "reason": "CUDA error: out of memory on device 0"}
        assert (await callback(api, job_id, "done", token, failed)).status_code == 202
    after = await scrape(api)

    finished = "trainyard_jobs_finished_total"
    labels = {"framework": FRAMEWORK, "state": "FAILED", "reason": reason}
    assert after.value(finished, **labels) - before.value(finished, **labels) == 1
    assert {s["reason"] for s in after.series(finished)} <= {
        "succeeded",
        "cancelled",
        "dataset_invalid",
        "trainer_failed",
        "no_heartbeat",
        "attempts_exhausted",
        "interrupted_too_often",
        "unstartable",
        "interrupted",
        "activity_failed",
        "other",
    }


async def test_gpu_utilisation_heartbeat_age_and_gpu_seconds_come_from_the_database(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id, token = await _running_job(api, job_body)
    now = datetime.now(UTC)
    system = {
        "cpu_percent": 100.0,
        "ram_bytes": 10**9,
        "gpus": [
            {
                "index": 0,
                "utilization_ratio": 0.25,
                "memory_used_bytes": 1,
                "memory_total_bytes": 2,
            },
            {
                "index": 1,
                "utilization_ratio": 0.75,
                "memory_used_bytes": 1,
                "memory_total_bytes": 2,
            },
        ],
    }
    async with _runtime(app).db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.gpus = 2
        job.progress = {**(job.progress or {}), "system": system}
        job.last_heartbeat_at = now - timedelta(seconds=90)
        # It started running 100 s ago.
        await session.execute(
            update(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type == "state")
            .values(created_at=now - timedelta(seconds=100))
        )

    running = await scrape(api)
    assert (await callback(api, job_id, "done", token, DONE_SUCCEEDED)).status_code == 202
    ended = await scrape(api)

    ratios = {
        labels["gpu"]: labels
        for labels in running.series("trainyard_run_gpu_utilization_ratio")
        if labels["job_id"] == job_id
    }
    assert set(ratios) == {"0", "1"}
    assert running.value("trainyard_run_gpu_utilization_ratio", job_id=job_id, gpu="1") == 0.75
    assert ratios["0"]["project"] == "default"
    assert 90 <= running.value("trainyard_running_job_heartbeat_age_seconds") < 120
    gpu_seconds = running.value("trainyard_project_gpu_seconds_total", project="default")
    assert 200 <= gpu_seconds < 240  # 2 GPUs x 100 s (and the scrape's own seconds)
    # Ended: no more per-run series, and its GPU time stays counted.
    assert ended.series("trainyard_run_gpu_utilization_ratio") == []
    assert ended.value("trainyard_running_job_heartbeat_age_seconds") == 0
    assert ended.value("trainyard_project_gpu_seconds_total", project="default") >= 200


async def test_a_publish_the_bus_could_not_make_is_counted() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_local_port()}", "metrics-test", timeout_s=0.5)
    try:
        before = _failures()
        await bus.publish("job_x", {"seq": 1, "type": "heartbeat"})
        assert _failures() - before == 1
    finally:
        await bus.close()


def _failures() -> float:
    value = REGISTRY.get_sample_value("trainyard_bus_publish_failures_total")
    return value or 0.0


def test_metrics_are_served_on_the_internal_port_and_not_on_the_public_one(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        refused = httpx.get(ports.public + "/metrics")
        served = httpx.get(ports.internal + "/metrics")

    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert served.status_code == 200
    assert "trainyard_jobs" in served.text


async def test_a_stream_client_is_counted_while_connected_and_its_live_events_timed(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)
    before = await scrape(live_api)
    url = f"{live_server.ws_url}/v1/jobs/{job['id']}/stream?after_seq=1"

    async with connect(url) as ws:
        assert (await move(live_api, job["id"], "STARTING")).status_code == 200
        relayed = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        following = await scrape(live_api)
    after = await scrape(live_api)
    for _ in range(100):  # until the server has noticed the close
        if after.value("trainyard_stream_clients") == before.value("trainyard_stream_clients"):
            break
        await asyncio.sleep(0.1)
        after = await scrape(live_api)

    assert relayed["data"]["to"] == "STARTING"
    assert (
        following.value("trainyard_stream_clients") - before.value("trainyard_stream_clients") == 1
    )
    assert after.value("trainyard_stream_clients") == before.value("trainyard_stream_clients")
    relay = "trainyard_stream_relay_latency_seconds_count"
    assert following.value(relay) - before.value(relay) >= 1


async def test_on_the_single_port_metrics_keep_the_host_check(api: httpx.AsyncClient) -> None:
    # Loopback in the embedded tier: a page rebinding its name to 127.0.0.1 must not read it.
    refused = await api.get("/metrics", headers={"Host": "rebound.example"})

    assert (refused.status_code, refused.json()["code"]) == (403, "untrusted_host")
