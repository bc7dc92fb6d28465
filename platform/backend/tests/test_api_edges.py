"""Inputs at the edges of the public API, each once a 5xx or a lax answer: out-of-range
integers, bools for integers, a JSON body under another content type, and the methods of a
path (HEAD, OPTIONS, 405's Allow). test_api_contract.py generates such requests at random;
these are the cases found, kept as they were reported."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes

from .conftest import LiveServer
from .support import INTERNAL_HEADERS, callback, heartbeat, move, start_attempt, submit

BEYOND_INT64 = 2**63  # 9223372036854775808
HUGE = 10**157


async def register_shapes(api: httpx.AsyncClient, tmp_path: Path) -> None:
    generated = make_shapes(tmp_path / "shapes", ShapesSpec(train_images=6, val_images=2))
    created = await api.post("/v1/datasets", json={"name": "shapes", "uri": generated.uri})
    assert created.status_code == 201, created.text


def card(**fields: Any) -> dict[str, Any]:
    """A plan card for `shapes`; with -1_000_000 epochs its duration would be negative."""
    return {"model": "yolo11n.yaml", "dataset": "shapes", "imgsz": 64, **fields}


def fields_of(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


async def test_a_card_with_negative_epochs_gets_a_question_and_no_estimate(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register_shapes(api, tmp_path)

    checked = await api.post("/v1/chat/plan", json={"request": card(epochs=-1_000_000)})

    assert checked.status_code == 200, checked.text
    plan = checked.json()
    assert plan["estimate"] is None
    assert [question["field"] for question in plan["questions"]] == ["epochs"]
    assert plan["ready"] is False


async def test_starting_a_card_with_negative_epochs_is_refused_naming_them(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register_shapes(api, tmp_path)
    reply = await api.post("/v1/chat", json={"message": "train yolo11n on shapes"})
    assert reply.status_code == 200, reply.text
    conversation = reply.json()["conversation_id"]

    started = await api.post(
        f"/v1/chat/{conversation}/start", json={"request": card(epochs=-1_000_000)}
    )

    assert started.status_code == 422, started.text
    assert fields_of(started) == ["epochs"]
    assert (await api.get("/v1/jobs")).json()["total"] == 0


async def test_an_image_size_of_ten_to_the_157_is_a_question_or_a_422_never_a_crash(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register_shapes(api, tmp_path)

    said = await api.post(
        "/v1/chat", json={"message": f"train yolo11n on my shapes dataset at {HUGE}"}
    )
    checked = await api.post("/v1/chat/plan", json={"request": card(imgsz=HUGE)})
    largest = await api.post("/v1/chat/plan", json={"request": card(imgsz=BEYOND_INT64 - 1)})

    assert said.status_code == 200, said.text
    assert "imgsz" in [question["field"] for question in said.json()["plan"]["questions"]]
    assert checked.status_code == 422
    assert fields_of(checked) == ["request.imgsz"]
    assert largest.status_code == 200, largest.text
    assert largest.json()["estimate"] is None


async def test_an_offset_or_after_seq_beyond_the_columns_is_a_422(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    largest = 2**31 - 1  # an INTEGER column's largest value, fine on both tiers

    for path, name in (
        ("/v1/jobs", "offset"),
        (f"/v1/jobs/{job['id']}/events", "after_seq"),
        (f"/internal/v1/jobs/{job['id']}/events", "after_seq"),
    ):
        headers = INTERNAL_HEADERS if path.startswith("/internal/") else {}
        for beyond in (BEYOND_INT64, largest + 1):
            refused = await api.get(path, params={name: beyond}, headers=headers)
            assert refused.status_code == 422, (path, beyond, refused.text)
            assert fields_of(refused) == [name]
        accepted = await api.get(path, params={name: largest}, headers=headers)
        assert accepted.status_code == 200, (path, accepted.text)
        assert accepted.json()["items"] == []


async def test_a_stream_after_a_seq_beyond_the_column_closes_with_1008_naming_it(
    live_server: LiveServer,
) -> None:
    url = f"{live_server.ws_url}/v1/jobs/job_any/stream?after_seq={BEYOND_INT64}"
    async with connect(url) as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    assert ws.close_code == 1008
    assert (ws.close_reason or "").startswith("after_seq:")


async def test_bools_are_not_integers_in_request_bodies(
    api: httpx.AsyncClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    submitted = await api.post("/v1/jobs", json={**job_body, "gpus": False})
    as_float = await api.post("/v1/jobs", json={**job_body, "epochs": 3.0})
    planned = await api.post("/v1/chat/plan", json={"request": card(gpus=False)})
    job = await submit(api, job_body)
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"])
    beat = await callback(api, job["id"], "heartbeat", token, {**heartbeat(1), "epoch": True})

    assert submitted.status_code == 422
    assert fields_of(submitted) == ["gpus"]
    assert as_float.status_code == 422
    assert fields_of(as_float) == ["epochs"]
    assert planned.status_code == 422
    assert fields_of(planned) == ["request.gpus"]
    assert beat.status_code == 422
    assert fields_of(beat) == ["epoch"]


async def test_a_json_dataset_sent_as_text_plain_is_a_415(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    body = f'{{"name": "shapes", "uri": "{dataset_dir.as_uri()}"}}'

    refused = await api.post("/v1/datasets", content=body, headers={"Content-Type": "text/plain"})
    without_type = await api.post("/v1/datasets", content=body)

    assert refused.status_code == 415
    assert refused.json()["code"] == "unsupported_media_type"
    # An untyped body is what a foreign page can send without a preflight (auth.same_origin).
    assert without_type.status_code == 415


async def test_options_head_and_405_name_every_method_of_the_path(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)

    options = await api.options("/v1/jobs")
    options_cancel = await api.options(f"/v1/jobs/{job['id']}/cancel")
    get = await api.get("/v1/jobs")
    head = await api.head("/v1/jobs")
    head_job = await api.head(f"/v1/jobs/{job['id']}")
    delete = await api.delete("/v1/jobs")
    put = await api.put(f"/v1/jobs/{job['id']}")

    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert options_cancel.headers["allow"] == "OPTIONS, POST"
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head_job.status_code == 200
    assert delete.status_code == 405
    assert delete.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert delete.json()["code"] == "method_not_allowed"
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, HEAD, OPTIONS"
