"""The internal-API client's answers and retries, over httpx's scripted transport (the real
backend is exercised by the platform's end-to-end tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from trainyard_workflows.attempt_outputs import AttemptOutput
from trainyard_workflows.backend_client import (
    BackendAuthError,
    BackendClient,
    BackendError,
    BackendUnavailableError,
    JobTerminalError,
)

OUTPUT = AttemptOutput(output_dir="/data/jobs/job_ab12/attempt-1")


class Script:
    """Answers requests with the given responses in order (the last one repeats)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_for(script: Script, retry_for_s: float = 5.0) -> BackendClient:
    return BackendClient(
        "http://backend.test",
        "internal-secret",
        retry_for_s=retry_for_s,
        transport=httpx.MockTransport(script),
    )


JOB = {"id": "job_ab12", "state": "VALIDATING"}


async def test_transition_posts_the_state_with_the_bearer_token_and_returns_the_job() -> None:
    script = Script(httpx.Response(200, json=JOB))

    async with client_for(script) as client:
        result = await client.transition("job_ab12", "VALIDATING")

    assert result.applied
    assert result.job == JOB
    request = script.requests[0]
    assert request.url == "http://backend.test/internal/v1/jobs/job_ab12/transition"
    assert request.headers["Authorization"] == "Bearer internal-secret"
    assert json.loads(request.content) == {"state": "VALIDATING", "reason": None}


async def test_a_409_on_transition_means_already_decided_not_an_error() -> None:
    script = Script(httpx.Response(409, json={"detail": "job is CANCELLED"}))

    async with client_for(script) as client:
        result = await client.transition("job_ab12", "FAILED", "boom")

    assert not result.applied
    assert result.job is None
    assert result.detail == "job is CANCELLED"
    assert len(script.requests) == 1


async def test_connection_errors_and_5xx_are_retried_until_the_backend_answers() -> None:
    script = Script(
        httpx.ConnectError("connection refused"),
        httpx.Response(503),
        httpx.Response(202, json={"seq": 4}),
    )

    async with client_for(script) as client:
        event = await client.post_event("job_ab12", "validation_report", "ok", {"ok": True})

    assert event == {"seq": 4}
    assert len(script.requests) == 3
    assert json.loads(script.requests[-1].content) == {
        "type": "validation_report",
        "message": "ok",
        "data": {"ok": True},
    }


async def test_a_404_is_an_answer_not_retried_since_a_jobs_row_commits_before_its_workflow() -> (
    None
):
    script = Script(
        httpx.Response(404, json={"detail": "job not found", "code": "job_not_found"}),
        httpx.Response(200, json={"attempt": 1, "callback_token": "tok"}),
    )

    async with client_for(script) as client:
        with pytest.raises(BackendError, match=r"unexpected 404: job not found"):
            await client.issue_attempt_token("job_ab12", 1, OUTPUT)

    assert len(script.requests) == 1


async def test_retries_give_up_after_retry_for_s_with_an_error_naming_the_route() -> None:
    script = Script(httpx.Response(502, text="bad gateway"))

    async with client_for(script, retry_for_s=0.3) as client:
        with pytest.raises(BackendUnavailableError, match=r"POST /internal/v1/jobs/job_ab12/"):
            await client.transition("job_ab12", "STARTING")

    assert len(script.requests) >= 2


async def test_a_401_fails_at_once_naming_the_internal_token() -> None:
    script = Script(httpx.Response(401, json={"detail": "bad token"}))

    async with client_for(script) as client:
        with pytest.raises(BackendAuthError, match="TRAINYARD_INTERNAL_TOKEN"):
            await client.transition("job_ab12", "STARTING")

    assert len(script.requests) == 1


async def test_an_unexpected_4xx_fails_at_once_with_the_backends_detail() -> None:
    script = Script(httpx.Response(422, json={"detail": "state: unknown"}))

    async with client_for(script) as client:
        with pytest.raises(BackendError, match="unexpected 422: state: unknown"):
            await client.transition("job_ab12", "RUNNING")

    assert len(script.requests) == 1


async def test_a_409_on_an_attempt_token_means_the_job_is_terminal() -> None:
    script = Script(httpx.Response(409, json={"detail": "job is terminal"}))

    async with client_for(script) as client:
        with pytest.raises(JobTerminalError, match="job_ab12 is terminal"):
            await client.issue_attempt_token("job_ab12", 1, OUTPUT)


async def test_liveness_reads_state_attempt_last_heartbeat_and_done() -> None:
    script = Script(
        httpx.Response(
            200,
            json={
                "state": "RUNNING",
                "attempt": 1,
                "last_heartbeat_at": "2026-01-02T03:04:05+00:00",
                "done": False,
            },
        )
    )

    async with client_for(script) as client:
        liveness = await client.liveness("job_ab12")

    assert liveness.state == "RUNNING"
    assert liveness.attempt == 1
    assert liveness.last_heartbeat_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert not liveness.done
    assert script.requests[0].method == "GET"


async def test_liveness_before_any_heartbeat_has_no_timestamp() -> None:
    script = Script(
        httpx.Response(
            200, json={"state": "STARTING", "attempt": 1, "last_heartbeat_at": None, "done": False}
        )
    )

    async with client_for(script) as client:
        liveness = await client.liveness("job_ab12")

    assert liveness.last_heartbeat_at is None
