"""The internal API the worker uses (docs/architecture.md): auth, transitions, attempts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
from fastapi import FastAPI
from kubernetes_asyncio.client import ApiClient, Configuration
from temporalio.testing import ActivityEnvironment

from trainyard.callbacks.tokens import SigningKeys, verify
from trainyard_workflows.activities.schemas import (
    LaunchTrainerInput,
    ReportStateInput,
    StopTrainerInput,
    ValidateDatasetInput,
)
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking.metrics import run_tags

from .support import (
    CALLBACK_SECRET,
    INTERNAL_HEADERS,
    INTERNAL_TOKEN,
    OUTPUT_DIR,
    callback,
    events,
    get_job,
    heartbeat,
    key_of_another_project,
    move,
    start_attempt,
    submit,
)

OUTPUT = {"output_dir": OUTPUT_DIR}


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/transition", {"state": "VALIDATING"}),
        ("POST", "/events", {"type": "log"}),
        ("POST", "/attempts/1", {"output_dir": "/out"}),
        ("GET", "/liveness", None),
    ],
)
async def test_every_internal_route_needs_the_internal_token(
    api: httpx.AsyncClient,
    job: dict[str, Any],
    headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = await api.request(
        method, f"/internal/v1/jobs/{job['id']}{path}", json=body, headers=headers
    )

    assert response.status_code == 401
    assert await get_job(api, job["id"]) == job


async def test_a_forward_transition_answers_the_job_and_records_a_state_event(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    response = await move(api, job["id"], "VALIDATING")

    assert response.status_code == 200
    assert response.json()["state"] == "VALIDATING"
    last = (await events(api, job["id"]))[-1]
    assert (last["type"], last["source"], last["data"]) == (
        "state",
        "worker",
        {"from": "PENDING", "to": "VALIDATING", "reason": None},
    )


async def test_states_may_be_skipped_but_never_go_back(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    assert (await move(api, job["id"], "STARTING")).status_code == 200

    backwards = await move(api, job["id"], "VALIDATING")
    to_start = await move(api, job["id"], "PENDING")

    assert (backwards.status_code, to_start.status_code) == (409, 409)
    assert backwards.json()["code"] == "transition_refused"
    assert (await get_job(api, job["id"]))["state"] == "STARTING"


async def test_repeating_the_current_state_is_a_harmless_no_op(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    assert (await move(api, job["id"], "VALIDATING")).status_code == 200
    seq = (await get_job(api, job["id"]))["last_seq"]

    again = await move(api, job["id"], "VALIDATING")

    assert again.status_code == 200
    assert (await get_job(api, job["id"]))["last_seq"] == seq


async def test_exactly_one_terminal_transition_wins(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    first = await move(api, job["id"], "FAILED", "dataset has no labels")
    answers = [
        (await move(api, job["id"], state)).status_code
        for state in ("SUCCEEDED", "CANCELLED", "FAILED", "RUNNING")
    ]

    assert first.status_code == 200
    assert answers == [409, 409, 409, 409]
    after = await get_job(api, job["id"])
    assert (after["state"], after["reason"]) == ("FAILED", "dataset has no labels")
    states = [e["data"]["to"] for e in await events(api, job["id"]) if e["type"] == "state"]
    assert states == ["FAILED"]


async def test_a_transition_to_an_unknown_state_is_422(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    response = await move(api, job["id"], "EXPLODED")

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["state"]


async def test_internal_calls_about_an_unknown_job_are_404(api: httpx.AsyncClient) -> None:
    response = await move(api, "job_unknown", "VALIDATING")

    assert response.status_code == 404


async def test_a_worker_event_is_stored_and_answered(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    body = {"type": "validation_report", "message": "ok", "data": {"images": 8}}

    response = await api.post(
        f"/internal/v1/jobs/{job['id']}/events", json=body, headers=INTERNAL_HEADERS
    )

    assert response.status_code == 202
    stored = response.json()
    assert (stored["seq"], stored["type"], stored["source"], stored["data"]) == (
        2,
        "validation_report",
        "worker",
        {"images": 8},
    )


@pytest.mark.parametrize(
    "event",
    [
        {"type": "log", "message": "", "data": {"attempt": 1, "lines": ["late"]}},
        {"type": "validation_report", "message": "8 images", "data": {"images": 8}},
        {"type": "tracking_warning", "message": "MLflow down", "data": {}},
    ],
)
async def test_after_the_terminal_state_no_worker_event_is_appended(
    api: httpx.AsyncClient, job: dict[str, Any], event: dict[str, Any]
) -> None:
    # The stream ends with the terminal state: an event stored after it would never be shown
    # (a cancelled job's validation report landed 8 s after CANCELLED).
    assert (await move(api, job["id"], "CANCELLED")).status_code == 200
    before = await events(api, job["id"])

    late = await api.post(
        f"/internal/v1/jobs/{job['id']}/events", json=event, headers=INTERNAL_HEADERS
    )

    assert late.status_code == 409
    assert late.json()["code"] == "job_terminal"
    assert await events(api, job["id"]) == before


async def test_issuing_an_attempt_is_idempotent_and_makes_older_tokens_stale(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    first = await start_attempt(api, job["id"], 1)
    first_again = await start_attempt(api, job["id"], 1)
    second = await start_attempt(api, job["id"], 2)

    assert first == first_again
    claims = verify(SigningKeys.of("k1", CALLBACK_SECRET), second)
    assert (claims.job_id, claims.attempt) == (job["id"], 2)
    assert (await get_job(api, job["id"]))["attempt"] == 2
    stale = await api.post(
        f"/internal/v1/jobs/{job['id']}/attempts/1", json=OUTPUT, headers=INTERNAL_HEADERS
    )
    assert (stale.status_code, stale.json()["code"]) == (409, "attempt_superseded")
    assert (await callback(api, job["id"], "heartbeat", first, heartbeat(1))).status_code == 403


async def test_no_attempt_starts_on_a_terminal_job(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    assert (await move(api, job["id"], "CANCELLED")).status_code == 200

    response = await api.post(
        f"/internal/v1/jobs/{job['id']}/attempts/1", json=OUTPUT, headers=INTERNAL_HEADERS
    )

    assert response.status_code == 409
    assert response.json()["code"] == "job_terminal"


async def test_attempt_zero_is_422(api: httpx.AsyncClient, job: dict[str, Any]) -> None:
    response = await api.post(
        f"/internal/v1/jobs/{job['id']}/attempts/0", json=OUTPUT, headers=INTERNAL_HEADERS
    )

    assert response.status_code == 422


async def test_liveness_reports_state_attempt_heartbeat_and_done(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    async def liveness() -> dict[str, Any]:
        response = await api.get(
            f"/internal/v1/jobs/{job['id']}/liveness", headers=INTERNAL_HEADERS
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    assert await liveness() == {
        "state": "PENDING",
        "attempt": 0,
        "last_heartbeat_at": None,
        "done": False,
    }
    token = await start_attempt(api, job["id"], 1)
    assert (await callback(api, job["id"], "heartbeat", token, heartbeat(0))).status_code == 202
    running = await liveness()
    assert (running["state"], running["attempt"], running["done"]) == ("RUNNING", 1, False)
    assert datetime.fromisoformat(running["last_heartbeat_at"]).tzinfo is not None

    await start_attempt(api, job["id"], 2)
    assert (await liveness())["last_heartbeat_at"] is None  # attempt 2 has not beaten yet

    done: dict[str, Any] = {"status": "failed", "reason": "boom", "metrics": {}, "artifacts": {}}
    token_2 = await start_attempt(api, job["id"], 2)
    assert (await callback(api, job["id"], "done", token_2, done)).status_code == 202
    assert (await liveness())["done"] is True


async def test_the_newest_checkpoint_a_trainer_announced_is_where_a_new_attempt_resumes(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    url = f"/internal/v1/jobs/{job['id']}/checkpoint"
    assert (await api.get(url, headers=INTERNAL_HEADERS)).json() == {"checkpoint": None}
    token = await start_attempt(api, job["id"])
    for epoch in (1, 2):
        body = {
            "type": "checkpoint_saved",
            "message": f"epoch {epoch}",
            "data": {
                "path": f"{OUTPUT_DIR}/last-{epoch}.pt",
                "epoch": epoch,
                "size": 10 * epoch,
                "sha256": f"{epoch}" * 64,
            },
        }
        assert (await callback(api, job["id"], "event", token, body)).status_code == 202
    # A worker event of the same type is not a file a trainer wrote.
    worker = {"type": "checkpoint_saved", "data": {"path": "/elsewhere.pt", "epoch": 9}}
    posted = await api.post(
        f"/internal/v1/jobs/{job['id']}/events", json=worker, headers=INTERNAL_HEADERS
    )
    assert posted.status_code == 202

    response = await api.get(url, headers=INTERNAL_HEADERS)

    assert response.status_code == 200
    checkpoint = response.json()["checkpoint"]
    assert (checkpoint["path"], checkpoint["epoch"]) == (f"{OUTPUT_DIR}/last-2.pt", 2)
    assert (checkpoint["size"], checkpoint["sha256"]) == (20, "2" * 64)
    assert (
        await api.get("/internal/v1/jobs/job_nope/checkpoint", headers=INTERNAL_HEADERS)
    ).status_code == 404


@pytest.fixture
async def worker_activities(app: FastAPI, tmp_path: Path) -> AsyncIterator[TrainingActivities]:
    """The worker's training activities, talking to this app's real internal API."""
    async with BackendClient(
        "http://trainyard.test", INTERNAL_TOKEN, transport=httpx.ASGITransport(app=app)
    ) as backend:
        yield TrainingActivities(
            backend, SubprocessLauncher(tmp_path), WorkerSettings(data_dir=tmp_path)
        )


async def test_a_validation_that_ends_after_a_cancel_leaves_nothing_on_the_timeline(
    api: httpx.AsyncClient,
    job: dict[str, Any],
    dataset_dir: Path,
    worker_activities: TrainingActivities,
) -> None:
    # The worker's validate_dataset activity, through the real internal API: the job was
    # cancelled while the dataset was read, so its report is the worker's only.
    assert (await move(api, job["id"], "CANCELLED")).status_code == 200
    before = await events(api, job["id"])
    report = await ActivityEnvironment().run(
        worker_activities.validate_dataset,
        ValidateDatasetInput(job["id"], dataset_dir.as_uri(), "detect"),
    )

    assert report.summary()
    assert await events(api, job["id"]) == before


async def test_after_a_trainers_done_the_worker_reads_the_backends_verdict_and_moves_nothing(
    api: httpx.AsyncClient, job: dict[str, Any], worker_activities: TrainingActivities
) -> None:
    # callbacks.service.done is the one place a trainer's verdict becomes a state: the
    # workflow's report_state(None) only reads it back.
    token = await start_attempt(api, job["id"])
    done = {"status": "failed", "reason": "diverged", "metrics": {}, "artifacts": {}}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 202
    before = await events(api, job["id"])
    result = await ActivityEnvironment().run(
        worker_activities.report_state, ReportStateInput(job["id"], None)
    )

    assert (result.applied, result.state) == (False, "FAILED")
    assert await events(api, job["id"]) == before


# --- the job's project, for the worker --------------------------------------------------------


async def test_the_worker_reads_the_slug_of_the_jobs_project_with_the_job_and_the_grant(
    api: httpx.AsyncClient, job: dict[str, Any], job_body: dict[str, Any]
) -> None:
    vision = await submit(api, job_body, **await key_of_another_project(api, "vision"))

    for submitted, slug in ((job, "default"), (vision, "vision")):
        read = await api.get(f"/internal/v1/jobs/{submitted['id']}", headers=INTERNAL_HEADERS)
        grant = await api.post(
            f"/internal/v1/jobs/{submitted['id']}/attempts/1",
            json=OUTPUT,
            headers=INTERNAL_HEADERS,
        )
        assert read.status_code == grant.status_code == 200
        assert read.json()["project_slug"] == slug
        assert read.json()["project_id"] == submitted["project_id"]
        assert grant.json()["project_slug"] == slug
    # The public read names the project by id only.
    assert "project_slug" not in await get_job(api, job["id"])


async def test_a_job_of_a_mapped_project_runs_and_is_cancelled_in_its_namespace_and_tagged_with_it(
    app: FastAPI,
    api: httpx.AsyncClient,
    job_body: dict[str, Any],
    cluster: kmock.KubernetesEmulator,
    tmp_path: Path,
) -> None:
    # The worker's launch and stop activities through this app's real internal API, with the
    # Kubernetes launcher against kmock's emulator.
    vision = await submit(api, job_body, **await key_of_another_project(api, "vision"))
    settings = WorkerSettings(
        data_dir=tmp_path,
        launcher="kubernetes",
        k8s_namespace="ml-training",
        k8s_project_namespaces={"vision": "ml-vision"},
        k8s_images={"ultralytics": "registry.example/trainer-ultralytics:1.2"},
    )

    async def kubernetes() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    launcher = KubernetesLauncher(settings, kubernetes, poll_s=0.01, observation_s=0.0)
    training = TrainingInput(
        vision["id"], "ultralytics", "yolo11n.yaml", "/d", "detect", 1, 64, 4, 0
    )
    try:
        async with BackendClient(
            "http://trainyard.test", INTERNAL_TOKEN, transport=httpx.ASGITransport(app=app)
        ) as backend:
            activities = TrainingActivities(backend, launcher, settings)
            handle = await ActivityEnvironment().run(
                activities.launch_trainer, LaunchTrainerInput(training, 1)
            )
            stopping = asyncio.ensure_future(
                ActivityEnvironment().run(activities.stop_trainer, StopTrainerInput(handle))
            )
            deadline = asyncio.get_running_loop().time() + 5
            while not [r for r in cluster if r.method == "DELETE"]:
                assert asyncio.get_running_loop().time() < deadline, "the Job was never deleted"
                await asyncio.sleep(0.01)
            del cluster.objects["batch/v1/jobs", "ml-vision", handle.name]  # the GC's part
            stopped = await asyncio.wait_for(stopping, 5)
            tags = run_tags(await backend.job(vision["id"]), 1)
    finally:
        await launcher.aclose()

    assert (handle.namespace, stopped.was_running) == ("ml-vision", True)
    assert {(r.method, r.namespace) for r in cluster if r.resource} == {
        ("POST", "ml-vision"),
        ("PATCH", "ml-vision"),
        ("GET", "ml-vision"),
        ("DELETE", "ml-vision"),
    }
    assert tags["trainyard.project"] == "vision"
