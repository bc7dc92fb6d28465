"""Trainer callbacks (docs/trainer-contract.md): authentication, progress and the outcome."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from trainyard.callbacks.tokens import SigningKeys, issue

from .support import (
    DONE_SUCCEEDED,
    callback,
    checkpoint_saved,
    events,
    get_job,
    heartbeat,
    move,
    start_attempt,
    submit,
)


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


@pytest.fixture
async def token(api: httpx.AsyncClient, job: dict[str, Any]) -> str:
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    return await start_attempt(api, job["id"])


async def test_the_first_heartbeat_moves_the_job_to_running_and_records_progress(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    response = await callback(api, job["id"], "heartbeat", token, heartbeat(1, box_loss=1.5))

    assert response.status_code == 202
    assert response.json()["type"] == "heartbeat"
    after = await get_job(api, job["id"])
    assert after["state"] == "RUNNING"
    assert after["last_heartbeat_at"] is not None
    assert after["progress"] == {
        "epoch": 1,
        "epochs": 3,
        "metrics": {"box_loss": 1.5},
        "elapsed_s": 10.0,
        "eta_s": 20.0,
        "system": None,  # this trainer sent no system metrics
    }
    kinds = [(e["type"], e["data"].get("to")) for e in await events(api, job["id"])]
    assert kinds[-2:] == [("state", "RUNNING"), ("heartbeat", None)]


async def test_duplicated_and_reordered_heartbeats_never_move_progress_backwards(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    for beat in (heartbeat(2, box_loss=1.0), heartbeat(1, box_loss=9.0), heartbeat(2)):
        assert (await callback(api, job["id"], "heartbeat", token, beat)).status_code == 202

    progress = (await get_job(api, job["id"]))["progress"]
    assert progress["epoch"] == 2
    # The epoch-1 heartbeat arrived late and the keep-alive had no metrics: epoch 2's stay.
    assert progress["metrics"] == {"box_loss": 1.0}
    heartbeats = [e for e in await events(api, job["id"]) if e["type"] == "heartbeat"]
    assert len(heartbeats) == 3  # every heartbeat is on the timeline, as it arrived


async def test_a_trainer_event_is_stored_with_its_type(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    body = checkpoint_saved(1)

    response = await callback(api, job["id"], "event", token, body)

    assert response.status_code == 202
    stored = (await events(api, job["id"]))[-1]
    assert (stored["type"], stored["source"], stored["message"], stored["data"]) == (
        "checkpoint_saved",
        "trainer",
        "epoch 1",
        body["data"],
    )


async def test_done_succeeded_ends_the_job_with_its_result(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    response = await callback(api, job["id"], "done", token, DONE_SUCCEEDED)

    assert response.status_code == 202
    after = await get_job(api, job["id"])
    assert after["state"] == "SUCCEEDED"
    assert after["result"] == {
        "metrics": DONE_SUCCEEDED["metrics"],
        "artifacts": DONE_SUCCEEDED["artifacts"],
    }
    tail = [(e["type"], e["data"].get("to")) for e in (await events(api, job["id"]))[-2:]]
    assert tail == [("done", None), ("state", "SUCCEEDED")]


async def test_done_failed_records_the_reason(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    body = {"status": "failed", "reason": "CUDA out of memory", "metrics": {}, "artifacts": {}}

    assert (await callback(api, job["id"], "done", token, body)).status_code == 202

    after = await get_job(api, job["id"])
    assert (after["state"], after["reason"]) == ("FAILED", "CUDA out of memory")
    last = (await events(api, job["id"]))[-1]
    assert last["data"] == {"from": "STARTING", "to": "FAILED", "reason": "CUDA out of memory"}


async def test_done_cancelled_nobody_asked_for_ends_the_attempt_not_the_job(
    api: httpx.AsyncClient, job: dict[str, Any], token: str, temporal_env: WorkflowEnvironment
) -> None:
    # A preempted pod or a kill -TERM: the trainer stops cleanly and says cancelled.
    stopped = {"status": "cancelled", "reason": None, "metrics": {"loss": 1.0}, "artifacts": {}}

    assert (await callback(api, job["id"], "done", token, stopped)).status_code == 202

    after = await get_job(api, job["id"])
    assert (after["state"], after["result"]) == ("STARTING", None)
    last = (await events(api, job["id"]))[-1]
    assert (last["type"], last["message"]) == (
        "done",
        "trainer of attempt 1 stopped without a cancel request",
    )
    # The workflow decides: it starts the next attempt (workflows/tests/test_training_scripted).
    handle = temporal_env.client.get_workflow_handle(f"training-{job['id']}")
    history = await handle.fetch_history()
    names = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert names == ["trainer_done"]


async def test_done_signals_the_workflow(
    api: httpx.AsyncClient, job: dict[str, Any], token: str, temporal_env: WorkflowEnvironment
) -> None:
    assert (await callback(api, job["id"], "done", token, DONE_SUCCEEDED)).status_code == 202

    handle = temporal_env.client.get_workflow_handle(f"training-{job['id']}")
    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [s.signal_name for s in signals] == ["trainer_done"]
    payload = temporal_env.client.data_converter.payload_converter.from_payloads(
        signals[0].input.payloads
    )[0]
    assert payload == {"attempt": 1, "status": "succeeded", "reason": None}


async def test_only_the_first_done_counts_and_later_callbacks_are_409(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    assert (await callback(api, job["id"], "done", token, DONE_SUCCEEDED)).status_code == 202
    before = await get_job(api, job["id"])

    failed = {"status": "failed", "reason": "late", "metrics": {}, "artifacts": {}}
    answers = [
        (await callback(api, job["id"], "done", token, failed)).status_code,
        (await callback(api, job["id"], "heartbeat", token, heartbeat(3))).status_code,
        (await callback(api, job["id"], "event", token, {"type": "log"})).status_code,
    ]

    assert answers == [409, 409, 409]
    assert await get_job(api, job["id"]) == before
    terminal = [e for e in await events(api, job["id"]) if e["type"] == "state"]
    assert [e["data"]["to"] for e in terminal][-1] == "SUCCEEDED"
    assert sum(e["data"]["to"] in {"SUCCEEDED", "FAILED", "CANCELLED"} for e in terminal) == 1


async def test_a_callback_without_a_token_is_401(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    response = await callback(api, job["id"], "heartbeat", None, heartbeat(1))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "forged",
    [
        "not-a-token",
        "callback.{job}.1.{expires}.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "callback.{job}.1.{expires}.k1.{sig_of_other_secret}",
        "callback.{job}.01.{expires}.k1.{sig}",
        "callback.{job}.1.{expires}.k1.{sig}.extra",
        "callback.{job}.1.{expires}.k0.{sig}",
        "{job}.1.{sig}",
    ],
)
async def test_a_forged_token_is_401(
    api: httpx.AsyncClient, job: dict[str, Any], token: str, forged: str
) -> None:
    expires, signature = token.split(".")[3], token.rsplit(".", 1)[1]
    other_keys = SigningKeys.of("k1", "another-secret")
    other = issue(other_keys, job["id"], 1, int(expires)).rsplit(".", 1)[1]
    bad = forged.format(job=job["id"], expires=expires, sig=signature, sig_of_other_secret=other)

    for kind, body in (("heartbeat", heartbeat(1)), ("done", DONE_SUCCEEDED)):
        assert (await callback(api, job["id"], kind, bad, body)).status_code == 401


async def test_another_jobs_token_is_403(
    api: httpx.AsyncClient, job_body: dict[str, Any], job: dict[str, Any], token: str
) -> None:
    other = await submit(api, job_body)

    response = await callback(api, other["id"], "heartbeat", token, heartbeat(1))

    assert response.status_code == 403
    assert (await get_job(api, other["id"]))["progress"] is None


async def test_a_stale_attempts_token_is_403_and_changes_nothing(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    fresh = await start_attempt(api, job["id"], attempt=2)
    before = await get_job(api, job["id"])

    stale = await callback(api, job["id"], "heartbeat", token, heartbeat(1))
    stale_done = await callback(api, job["id"], "done", token, DONE_SUCCEEDED)

    assert (stale.status_code, stale_done.status_code) == (403, 403)
    assert stale.json()["code"] == "stale_attempt"
    assert await get_job(api, job["id"]) == before
    assert (await callback(api, job["id"], "heartbeat", fresh, heartbeat(1))).status_code == 202


async def test_the_heartbeat_fast_path_refuses_exactly_as_the_other_callbacks(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    """One rule (callbacks.service.check_reporter) for the ingest and the ORM path alike."""
    event = {"type": "note", "message": "hi"}
    fresh = await start_attempt(api, job["id"], attempt=2)
    stale = [
        await callback(api, job["id"], kind, token, body)
        for kind, body in (("heartbeat", heartbeat(1)), ("event", event))
    ]
    assert (await callback(api, job["id"], "done", fresh, DONE_SUCCEEDED)).status_code == 202
    ended = [
        await callback(api, job["id"], kind, fresh, body)
        for kind, body in (("heartbeat", heartbeat(2)), ("event", event))
    ]

    for fast, slow in (stale, ended):
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json())
    assert [answers[0].status_code for answers in (stale, ended)] == [403, 409]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("heartbeat", {"epoch": 1}),
        ("heartbeat", {"epoch": -1, "epochs": 3}),
        ("heartbeat", {"epoch": 1, "epochs": 3, "gpu": "A100"}),
        ("heartbeat", {"epoch": "one", "epochs": 3}),
        ("event", {"type": "Not Snake"}),
        ("event", {"type": "state", "data": {"to": "SUCCEEDED"}}),
        ("event", {"message": "no type"}),
        ("done", {"status": "exploded"}),
        ("done", {"status": "succeeded", "artifacts": {"weights": 3}}),
        ("done", {"status": "succeeded", "extra": True}),
    ],
)
async def test_a_malformed_body_is_422_and_the_job_is_unchanged(
    api: httpx.AsyncClient, job: dict[str, Any], token: str, kind: str, body: dict[str, Any]
) -> None:
    before = await get_job(api, job["id"])

    response = await callback(api, job["id"], kind, token, body)

    assert response.status_code == 422, response.text
    assert await get_job(api, job["id"]) == before


async def test_a_bad_token_is_refused_before_the_body_is_read(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    assert (
        await callback(api, job["id"], "heartbeat", "forged", {"nonsense": 1})
    ).status_code == 401


async def test_nan_metrics_are_stored_as_null(
    api: httpx.AsyncClient, job: dict[str, Any], token: str
) -> None:
    raw = b'{"epoch": 1, "epochs": 3, "metrics": {"loss": NaN, "map": 0.5}, "eta_s": Infinity}'

    response = await api.post(
        f"/v1/jobs/{job['id']}/heartbeat",
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 202, response.text
    progress = (await get_job(api, job["id"]))["progress"]
    assert progress["metrics"] == {"loss": None, "map": 0.5}
    assert progress["eta_s"] is None
