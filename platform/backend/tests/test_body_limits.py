"""Every request body is bounded before anything parses it (core/body_limits.py), and an error
body echoes only a bounded part of the request (core/errors.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from trainyard.core.body_limits import BodyLimits
from trainyard.core.settings import BackendSettings

from .support import submit


async def _jobs(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    listed = await api.get("/v1/jobs")
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def _oversize_job(job_body: dict[str, object], settings: BackendSettings) -> bytes:
    # A submission padded past the limit (without one, the API would read and parse it all).
    padded = {**job_body, "padding": "x" * settings.max_json_body_bytes}
    return json.dumps(padded).encode()


async def test_a_json_body_over_the_limit_is_413_and_nothing_is_stored(
    api: httpx.AsyncClient, job_body: dict[str, object], settings: BackendSettings
) -> None:
    body = _oversize_job(job_body, settings)

    response = await api.post(
        "/v1/jobs", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"the request body is larger than the limit of "
        f"{settings.max_json_body_bytes} bytes",
        "code": "request_too_large",
    }
    assert await _jobs(api) == []


async def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(
    api: httpx.AsyncClient, job_body: dict[str, object], settings: BackendSettings
) -> None:
    body = _oversize_job(job_body, settings)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await api.post(
        "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "request_too_large"
    assert await _jobs(api) == []


async def test_a_multipart_body_elsewhere_than_an_upload_is_held_to_the_json_limit(
    api: httpx.AsyncClient, settings: BackendSettings
) -> None:
    response = await api.post(
        "/v1/jobs", files={"file": ("big.bin", b"\0" * (settings.max_json_body_bytes + 1))}
    )

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "request_too_large"


async def test_a_body_within_the_limit_is_taken(
    api: httpx.AsyncClient, job_body: dict[str, object]
) -> None:
    job = await submit(api, job_body)

    assert [j["id"] for j in await _jobs(api)] == [job["id"]]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    scope["seen_receive"] = receive
    while (await receive()).get("more_body", False):
        pass


def _scope(headers: list[tuple[bytes, bytes]], path: str = "/v1/jobs") -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(message: Message) -> None:
    raise AssertionError(f"nothing is sent for a body within the limit: {message}")


async def test_a_body_with_a_length_within_the_limit_reaches_the_app_unwrapped() -> None:
    # The heartbeat ingest's cost: its own `receive`, no wrapper, no copy.
    limits = BodyLimits(_app, json_limit=10, multipart_limit=100, multipart_paths=frozenset())
    scope = _scope([(b"content-length", b"2"), (b"content-type", b"application/json")])

    await limits(scope, _receive, _send)

    assert scope["seen_receive"] is _receive


@pytest.mark.parametrize(
    ("path", "expected"), [("/v1/datasets", "passes"), ("/v1/jobs", "refused")]
)
async def test_the_multipart_limit_applies_on_upload_paths_only(path: str, expected: str) -> None:
    limits = BodyLimits(
        _app, json_limit=10, multipart_limit=100, multipart_paths=frozenset({"/v1/datasets"})
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope(
        [(b"content-length", b"50"), (b"content-type", b"multipart/form-data; boundary=x")], path
    )
    await limits(scope, _receive, send)

    outcome = "refused" if sent and sent[0]["status"] == 413 else "passes"
    assert outcome == expected


async def test_a_422_echoes_only_a_bounded_part_of_the_request(
    api: httpx.AsyncClient, job_body: dict[str, object]
) -> None:
    # Keys the schema forbids, each as long as a body may carry: each is named in `errors`.
    body = {**job_body, **{f"{i:04d}" + "k" * 20_000: 1 for i in range(40)}}

    response = await api.post("/v1/jobs", json=body)

    assert response.status_code == 422, response.text
    assert len(response.content) < 20_000
    errors = response.json()["errors"]
    assert len(errors) == 21  # 20 named, then how many more
    assert errors[-1]["message"] == "and 20 more errors"
    assert all(len(e["field"]) <= 200 for e in errors)
