"""Client of the backend's internal API (worker -> backend), see docs/architecture.md.

The backend is the only writer of jobs and events, so every state change and event the worker
produces goes through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from trainyard_workflows.attempt_outputs import AttemptOutput
from trainyard_workflows.capacity.model import Capacity
from trainyard_workflows.internal_api import (
    AdmissionAnswer,
    AttemptGrant,
    Checkpoint,
    ExternalQueuePlace,
    LatestCheckpoint,
    Liveness,
    RequeueRequest,
    TrackingUpdate,
    TransitionRequest,
    WorkerEvent,
)
from trainyard_workflows.job_states import JobState

logger = logging.getLogger(__name__)


class BackendError(Exception):
    """The backend answered something the worker cannot act on."""


class BackendAuthError(BackendError):
    """401: the worker's internal token is not the backend's; retrying cannot help."""


class BackendUnavailableError(BackendError):
    """Connection errors or 5xx that outlasted the client's retries."""


class JobTerminalError(BackendError):
    """409: the job already ended, so nothing may be launched or added to its timeline."""


class _RetryableStatus(BackendError):
    """5xx: worth another try. (Not 404: a job's row commits before its workflow starts, so a
    404 means the job is unknown.)"""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: {response.status_code}"
        )
        self.response = response


@dataclass(frozen=True)
class TransitionResult:
    """Outcome of a transition request. `applied` is False when the backend answered 409."""

    applied: bool
    job: dict[str, Any] | None
    detail: str | None = None


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError | _RetryableStatus)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]


class BackendClient:
    """Async client of `/internal/v1`. Retries connection errors and 5xx for up to
    `retry_for_s` seconds with exponential backoff; other answers are returned or raised at once.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        retry_for_s: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._retry_for_s = retry_for_s

    async def __aenter__(self) -> BackendClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def transition(
        self, job_id: str, state: str, reason: str | None = None
    ) -> TransitionResult:
        """Move the job to `state`; a 409 (backwards or already terminal) is not an error."""
        response = await self._request(
            "POST",
            f"/internal/v1/jobs/{job_id}/transition",
            json=_body(TransitionRequest.model_construct(state=JobState(state), reason=reason)),
            accept=(200, 409),
        )
        if response.status_code == 409:
            return TransitionResult(applied=False, job=None, detail=_detail(response))
        return TransitionResult(applied=True, job=response.json())

    async def post_event(
        self, job_id: str, type_: str, message: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store an event on the job's timeline (shown in `trainyard watch` and the web UI);
        `JobTerminalError` once the job ended (its timeline ends with the terminal state)."""
        response = await self._request(
            "POST",
            f"/internal/v1/jobs/{job_id}/events",
            json=_body(WorkerEvent.model_construct(type=type_, message=message, data=data or {})),
            accept=(200, 201, 202, 409),
        )
        if response.status_code == 409:
            raise JobTerminalError(f"job {job_id} ended; {type_} not stored: {_detail(response)}")
        body: dict[str, Any] = response.json()
        return body

    async def issue_attempt_token(
        self, job_id: str, attempt: int, output: AttemptOutput
    ) -> AttemptGrant:
        """Make `attempt` the job's current attempt, with `output` the only place its trainer
        may report files in, and get its callback token (idempotent)."""
        response = await self._request(
            "POST",
            f"/internal/v1/jobs/{job_id}/attempts/{attempt}",
            json=_body(output),
            accept=(200, 409),
        )
        if response.status_code == 409:
            raise JobTerminalError(f"job {job_id} is terminal: {_detail(response)}")
        return AttemptGrant.model_validate_json(response.content)

    async def liveness(self, job_id: str) -> Liveness:
        """The job's state, current attempt, last trainer heartbeat and whether done arrived."""
        response = await self._request("GET", f"/internal/v1/jobs/{job_id}/liveness", accept=(200,))
        return Liveness.model_validate_json(response.content)

    async def find_liveness(self, job_id: str) -> Liveness | None:
        """As `liveness`, but None when the backend has no such job: for the reconciler, which
        asks about old jobs."""
        response = await self._request(
            "GET", f"/internal/v1/jobs/{job_id}/liveness", accept=(200, 404)
        )
        if response.status_code == 404:
            return None
        return Liveness.model_validate_json(response.content)

    async def job(self, job_id: str) -> dict[str, Any]:
        """The job as the public API shows it (request, state, progress, result, tracking)."""
        response = await self._request("GET", f"/internal/v1/jobs/{job_id}", accept=(200,))
        body: dict[str, Any] = response.json()
        return body

    async def events_after(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` events with seq > after_seq in seq order, and the job's newest seq."""
        response = await self._request(
            "GET",
            f"/internal/v1/jobs/{job_id}/events?after_seq={after_seq}&limit={limit}",
            accept=(200,),
        )
        body = response.json()
        return list(body["items"]), int(body["last_seq"])

    async def latest_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The job's newest `checkpoint_saved` location, None if no trainer saved one yet."""
        response = await self._request(
            "GET", f"/internal/v1/jobs/{job_id}/checkpoint", accept=(200,)
        )
        return LatestCheckpoint.model_validate_json(response.content).checkpoint

    async def request_admission(self, job_id: str) -> AdmissionAnswer:
        """Whether the validated job may start now (trainyard/admission); else it is QUEUED."""
        response = await self._request(
            "POST", f"/internal/v1/jobs/{job_id}/admission", accept=(200,)
        )
        return AdmissionAnswer.model_validate_json(response.content)

    async def requeue(self, job_id: str, attempt: int, by: str) -> TransitionResult:
        """Send the preempted job back to QUEUED; a 409 (it ended meanwhile) is not an error."""
        response = await self._request(
            "POST",
            f"/internal/v1/jobs/{job_id}/requeue",
            json=_body(RequeueRequest.model_construct(attempt=attempt, by=by)),
            accept=(200, 409),
        )
        if response.status_code == 409:
            return TransitionResult(applied=False, job=None, detail=_detail(response))
        return TransitionResult(applied=True, job=response.json())

    async def report_external_queue(
        self, job_id: str, attempt: int, place: ExternalQueuePlace | None
    ) -> None:
        """Tell the backend where Kueue holds the attempt (the job waits in QUEUED), or, with
        None, that Kueue admitted it. A 409 (the job ended, or moved on) is not an error."""
        path = f"/internal/v1/jobs/{job_id}/external-queue"
        if place is None:
            await self._request("DELETE", f"{path}?attempt={attempt}", accept=(204, 409))
        else:
            await self._request("PUT", path, json=_body(place), accept=(204, 409))

    async def record_tracking(self, job_id: str, tracking: dict[str, Any]) -> dict[str, Any]:
        """Store where the job is tracked (its MLflow run and model version) on the job."""
        response = await self._request(
            "POST",
            f"/internal/v1/jobs/{job_id}/tracking",
            json=_body(TrackingUpdate.model_construct(**tracking)),
            accept=(200,),
        )
        body: dict[str, Any] = response.json()
        return body

    async def report_capacity(self, capacity: Capacity) -> None:
        """Tell the backend what admission may hand out (the newest report replaces the last)."""
        await self._request("PUT", "/internal/v1/capacity", json=_body(capacity), accept=(204,))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        accept: tuple[int, ...],
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_delay(self._retry_for_s),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "backend %s %s failed (%s), retrying",
                method,
                path,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        try:
            response: httpx.Response = await retrying(self._send, method, path, json)
        except _RetryableStatus as error:
            raise BackendUnavailableError(
                f"{error} after retrying for {self._retry_for_s:g}s: {_detail(error.response)}"
            ) from error
        except httpx.TransportError as error:
            raise BackendUnavailableError(
                f"{method} {path}: backend unreachable at {self._http.base_url} "
                f"after retrying for {self._retry_for_s:g}s ({error!r})"
            ) from error
        if response.status_code == 401:
            raise BackendAuthError(
                f"{method} {path}: 401, the backend refused TRAINYARD_INTERNAL_TOKEN "
                "(worker and backend must share the same token)"
            )
        if response.status_code not in accept:
            raise BackendError(
                f"{method} {path}: unexpected {response.status_code}: {_detail(response)}"
            )
        return response

    async def _send(self, method: str, path: str, json: dict[str, Any] | None) -> httpx.Response:
        response = await self._http.request(method, path, json=json)
        if response.status_code >= 500:
            raise _RetryableStatus(response)
        return response


def _body(request: BaseModel) -> dict[str, Any]:
    """A request body as the backend's model describes it; the backend validates it (422)."""
    body: dict[str, Any] = request.model_dump(mode="json", exclude_unset=True)
    return body
