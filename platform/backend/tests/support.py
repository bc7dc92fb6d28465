"""Helpers the backend tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx

INTERNAL_TOKEN = "test-internal-token"
CALLBACK_SECRET = "test-callback-secret"
INTERNAL_HEADERS = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


async def submit(api: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await api.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def events(api: httpx.AsyncClient, job_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/jobs/{job_id}/events", params={"after_seq": after_seq})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def start_attempt(api: httpx.AsyncClient, job_id: str, attempt: int = 1) -> str:
    """What the worker does before launching a trainer: returns the attempt's callback token."""
    response = await api.post(
        f"/internal/v1/jobs/{job_id}/attempts/{attempt}", headers=INTERNAL_HEADERS
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["callback_token"]
    return token


async def move(
    api: httpx.AsyncClient, job_id: str, state: str, reason: str | None = None
) -> httpx.Response:
    """A worker transition through the internal API."""
    return await api.post(
        f"/internal/v1/jobs/{job_id}/transition",
        json={"state": state, "reason": reason},
        headers=INTERNAL_HEADERS,
    )


async def callback(
    api: httpx.AsyncClient, job_id: str, kind: str, token: str | None, body: dict[str, Any]
) -> httpx.Response:
    """A trainer callback (heartbeat, event or done)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await api.post(f"/v1/jobs/{job_id}/{kind}", json=body, headers=headers)


def heartbeat(epoch: int, epochs: int = 3, **metrics: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "epochs": epochs,
        "metrics": {k.replace("__", "/"): v for k, v in metrics.items()},
        "elapsed_s": 10.0 * epoch,
        "eta_s": 10.0 * (epochs - epoch),
    }


DONE_SUCCEEDED: dict[str, Any] = {
    "status": "succeeded",
    "reason": None,
    "metrics": {"metrics/mAP50(B)": 0.52},
    "artifacts": {"weights": "/out/weights/best.pt", "last": "/out/weights/last.pt"},
}
