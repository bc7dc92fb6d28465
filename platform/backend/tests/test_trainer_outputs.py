"""A trainer may report files only inside its attempt's own output (issue 20, item 1).

Each case is an attack a callback token holder could try: the answer is 422 and nothing of
the callback is stored (no event, no result, no resumable checkpoint).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .support import (
    INTERNAL_HEADERS,
    OUTPUT_DIR,
    callback,
    checkpoint_saved,
    events,
    get_job,
    start_attempt,
    submit,
)

PREFIX = "s3://trainyard/jobs/job_x/attempt-1"


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


async def latest_checkpoint(api: httpx.AsyncClient, job_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/internal/v1/jobs/{job_id}/checkpoint", headers=INTERNAL_HEADERS)
    assert response.status_code == 200
    checkpoint: dict[str, Any] | None = response.json()["checkpoint"]
    return checkpoint


@pytest.mark.parametrize(
    "artifacts",
    [
        {"weights": "/etc/passwd"},
        {"run_dir": "/root/.ssh"},
        {"weights": f"{OUTPUT_DIR}/../etc/passwd"},
        {"weights": f"{OUTPUT_DIR}/weights/./best.pt"},
        {"weights": f"{OUTPUT_DIR}-other/weights/best.pt"},
        {"weights": f"file://{OUTPUT_DIR}/../../etc/shadow"},
        {"weights": "file://attacker.example/etc/passwd"},
        {"weights": "weights/best.pt"},
        {"weights": "https://attacker.example/best.pt"},
        {"weights": "s3://trainyard/jobs/job_x/attempt-1/best.pt"},  # no prefix recorded
        {"weights": f"{OUTPUT_DIR}/best.pt", "results": "/var/lib"},
    ],
)
async def test_done_with_a_location_outside_the_attempt_is_422_and_ends_nothing(
    api: httpx.AsyncClient, job: dict[str, Any], artifacts: dict[str, str]
) -> None:
    token = await start_attempt(api, job["id"])
    before = await events(api, job["id"])

    response = await callback(
        api, job["id"], "done", token, {"status": "succeeded", "artifacts": artifacts}
    )

    assert response.status_code == 422
    assert response.json()["code"] == "location_outside_attempt"
    assert await events(api, job["id"]) == before
    after = await get_job(api, job["id"])
    assert after["result"] is None
    assert after["state"] != "SUCCEEDED"


async def test_done_with_locations_inside_the_attempt_is_accepted(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"], output_uri=PREFIX)
    artifacts = {
        "weights": f"{OUTPUT_DIR}/run/weights/best.pt",
        "results": f"file://{OUTPUT_DIR}/run",
        "run_dir": f"{PREFIX}/run",
    }

    response = await callback(
        api, job["id"], "done", token, {"status": "succeeded", "artifacts": artifacts}
    )

    assert response.status_code == 202
    assert (await get_job(api, job["id"]))["result"]["artifacts"] == artifacts


@pytest.mark.parametrize(
    "location",
    [
        "s3://trainyard/jobs/job_x/attempt-2/last.pt",  # another attempt's prefix
        "s3://trainyard/jobs/job_x/attempt-10/last.pt",
        "s3://other-bucket/jobs/job_x/attempt-1/last.pt",
        f"{PREFIX}/run/../../attempt-2/last.pt",
        f"{PREFIX}//last.pt",
        PREFIX,
    ],
)
async def test_a_storage_location_outside_the_attempts_prefix_is_refused(
    api: httpx.AsyncClient, job: dict[str, Any], location: str
) -> None:
    token = await start_attempt(api, job["id"], output_uri=PREFIX)

    response = await callback(api, job["id"], "event", token, checkpoint_saved(1, location))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "data.path"


async def test_a_checkpoint_outside_the_attempt_is_refused_and_the_next_attempt_keeps_its_own(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"])
    own = checkpoint_saved(1)
    assert (await callback(api, job["id"], "event", token, own)).status_code == 202

    for hostile in ("/tmp/evil.pt", f"{OUTPUT_DIR}/../evil.pt"):
        refused = await callback(api, job["id"], "event", token, checkpoint_saved(2, hostile))
        assert refused.status_code == 422
    best_elsewhere = checkpoint_saved(2)
    best_elsewhere["data"]["best"] = "/tmp/evil-best.pt"
    assert (await callback(api, job["id"], "event", token, best_elsewhere)).status_code == 422

    checkpoint = await latest_checkpoint(api, job["id"])
    assert checkpoint is not None
    assert (checkpoint["path"], checkpoint["epoch"]) == (own["data"]["path"], 1)
    assert (checkpoint["size"], checkpoint["sha256"]) == (
        own["data"]["size"],
        own["data"]["sha256"],
    )


@pytest.mark.parametrize(
    "fingerprint",
    [
        {},
        {"size": 10},
        {"sha256": "a" * 64},
        {"size": -1, "sha256": "a" * 64},
        {"size": 1, "sha256": "zz"},
    ],
)
async def test_a_checkpoint_without_its_size_and_hash_is_refused(
    api: httpx.AsyncClient, job: dict[str, Any], fingerprint: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"])
    body = {
        "type": "checkpoint_saved",
        "data": {"path": f"{OUTPUT_DIR}/last.pt", "epoch": 1, **fingerprint},
    }

    assert (await callback(api, job["id"], "event", token, body)).status_code == 422
    assert await latest_checkpoint(api, job["id"]) is None


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("event", {"type": "log", "data": {"blob": "x" * (64 * 1024)}}),
        ("heartbeat", {"epoch": 1, "epochs": 3, "metrics": {f"m{i}": 1.0 for i in range(257)}}),
        ("heartbeat", {"epoch": 1, "epochs": 3, "metrics": {"m" * 257: 1.0}}),
        ("done", {"status": "succeeded", "metrics": {f"m{i}": 1.0 for i in range(257)}}),
        (
            "done",
            {
                "status": "succeeded",
                "artifacts": {f"a{i}": f"{OUTPUT_DIR}/{i}" for i in range(33)},
            },
        ),
        ("done", {"status": "failed", "reason": "r" * 10_001}),
    ],
)
async def test_an_oversized_callback_body_is_422_and_stores_nothing(
    api: httpx.AsyncClient, job: dict[str, Any], kind: str, body: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"])
    before = await events(api, job["id"])

    response = await callback(api, job["id"], kind, token, body)

    assert response.status_code == 422
    assert await events(api, job["id"]) == before
