"""System metrics in heartbeats (docs/trainer-contract.md): validated, stored on the heartbeat
event and as the job's latest ``progress.system``, through the group-commit ingest."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from .support import callback, events, get_job, heartbeat, move, start_attempt, submit

GIB = 1024**3


def system(cpu: float = 250.0, gpu_ratio: float = 0.9, **extra: Any) -> dict[str, Any]:
    return {
        "cpu_percent": cpu,
        "ram_bytes": 3 * GIB,
        "samples_per_s": 812.5,
        "data_wait_ratio": 0.25,
        "gpus": [
            {
                "index": 0,
                "utilization_ratio": gpu_ratio,
                "memory_used_bytes": 20 * GIB,
                "memory_total_bytes": 80 * GIB,
            }
        ],
        **extra,
    }


def beat(epoch: int, elapsed_s: float, sys_metrics: dict[str, Any] | None) -> dict[str, Any]:
    body = {**heartbeat(epoch), "elapsed_s": elapsed_s}
    if sys_metrics is not None:
        body["system"] = sys_metrics
    return body


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


@pytest.fixture
async def token(api: httpx.AsyncClient, job: dict[str, Any]) -> str:
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    return await start_attempt(api, job["id"])


async def test_a_heartbeats_system_metrics_are_on_its_event_and_the_jobs_progress(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    sent = system()

    response = await callback(api, job["id"], "heartbeat", token, beat(1, 10.0, sent))

    assert response.status_code == 202, response.text
    assert response.json()["data"]["system"] == sent
    (stored,) = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
    assert stored["data"]["system"] == sent
    assert (await get_job(api, job["id"]))["progress"]["system"] == sent


async def test_absent_optional_fields_stay_absent_and_a_cpu_run_has_no_gpus(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    sent = {"cpu_percent": 99.5, "ram_bytes": GIB}

    assert (await callback(api, job["id"], "heartbeat", token, beat(0, 1.0, sent))).is_success

    (stored,) = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
    assert stored["data"]["system"] == {**sent, "gpus": []}
    progress = (await get_job(api, job["id"]))["progress"]["system"]
    assert progress == {**sent, "gpus": [], "samples_per_s": None, "data_wait_ratio": None}


async def test_a_trainer_without_system_metrics_stores_none(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    assert (await callback(api, job["id"], "heartbeat", token, beat(1, 5.0, None))).is_success

    (stored,) = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
    assert "system" not in stored["data"]
    assert (await get_job(api, job["id"]))["progress"]["system"] is None


async def test_the_newest_heartbeat_sets_the_system_metrics_and_a_late_one_does_not(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    for body in (
        beat(1, 10.0, system(cpu=100.0)),
        beat(1, 20.0, system(cpu=200.0)),
        beat(1, 15.0, system(cpu=150.0)),  # sent before the previous one, arrived after
        beat(0, 5.0, system(cpu=50.0)),  # an older epoch's
    ):
        assert (await callback(api, job["id"], "heartbeat", token, body)).is_success

    assert (await get_job(api, job["id"]))["progress"]["system"]["cpu_percent"] == 200.0
    stored = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
    # Every heartbeat's own metrics stay on its event: the job page charts them.
    assert [e["data"]["system"]["cpu_percent"] for e in stored] == [100.0, 200.0, 150.0, 50.0]


async def test_concurrent_heartbeats_of_several_jobs_keep_each_jobs_own_system_metrics(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    jobs = [await submit(api, job_body) for _ in range(3)]
    tokens = [await start_attempt(api, job["id"]) for job in jobs]

    responses = await asyncio.gather(
        *(
            callback(
                api,
                job["id"],
                "heartbeat",
                token,
                beat(1, float(n), system(cpu=float(100 * j + n), gpu_ratio=j / 4)),
            )
            for n in range(1, 6)
            for j, (job, token) in enumerate(zip(jobs, tokens, strict=True))
        )
    )

    assert {r.status_code for r in responses} == {202}
    for j, job in enumerate(jobs):
        latest = (await get_job(api, job["id"]))["progress"]["system"]
        assert latest["cpu_percent"] == 100 * j + 5  # the newest of its own five
        assert latest["gpus"][0]["utilization_ratio"] == j / 4
        stored = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
        assert sorted(e["data"]["system"]["cpu_percent"] for e in stored) == [
            100 * j + n for n in range(1, 6)
        ]


def _gpu(**change: Any) -> dict[str, Any]:
    return {**system()["gpus"][0], **change}


@pytest.mark.parametrize(
    "bad",
    [
        system(temperature_c=70),  # extra="forbid"
        {"ram_bytes": GIB},  # cpu_percent missing
        system(cpu=-1.0),
        system(ram_bytes=-5),
        system(ram_bytes=1.5),
        system(ram_bytes=2**60),
        system(data_wait_ratio=1.5),
        system(samples_per_s=-2.0),
        system(gpu_ratio=1.01),
        system(gpus=[_gpu(index=i) for i in range(17)]),
        system(gpus=[_gpu(index=True)]),
        system(gpus=[_gpu(memory_used_bytes=-1)]),
        system(gpus=[{**_gpu(), "uuid": "GPU-1"}]),
        [1, 2],
    ],
)
async def test_malformed_system_metrics_are_422_and_change_nothing(
    api: httpx.AsyncClient, job: dict[str, Any], token: str, bad: Any
) -> None:
    before = await get_job(api, job["id"])

    response = await callback(api, job["id"], "heartbeat", token, beat(1, 1.0, bad))

    assert response.status_code == 422, response.text
    assert await get_job(api, job["id"]) == before


async def test_nan_in_system_metrics_is_422(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    raw = b'{"epoch": 1, "epochs": 3, "system": {"cpu_percent": NaN, "ram_bytes": 1}}'

    response = await api.post(
        f"/v1/jobs/{job['id']}/heartbeat",
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text
