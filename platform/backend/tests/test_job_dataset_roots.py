"""A job naming a file:// folder directly is held to the dataset roots, like a registration:
no host folder is walked for it, and "missing" and "not allowed" are one answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx


async def test_a_job_on_a_folder_outside_the_roots_or_missing_gets_one_answer(
    api: httpx.AsyncClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    answers = []
    for uri in ("file:///etc", "file:///root/.ssh", (tmp_path / "no-such-folder").as_uri()):
        response = await api.post("/v1/jobs", json={**job_body, "dataset": uri})
        answers.append((response.status_code, response.content))

    assert answers[0][0] == 422
    assert b"dataset" in answers[0][1]
    assert answers[1:] == answers[:1] * 2
    assert (await api.get("/v1/jobs")).json()["items"] == []


async def test_a_job_on_a_folder_below_the_roots_is_accepted(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # job_body's dataset is a folder in the test's temp folder, which the test settings allow.
    response = await api.post("/v1/jobs", json=job_body)

    assert response.status_code == 201
