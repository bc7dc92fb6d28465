"""HTTP client for the platform's trainer callbacks: ``heartbeat``, ``event`` and ``done``.

Every call is ``POST {callback_url}/v1/jobs/{job_id}/<kind>`` with the attempt's bearer token.
Connection errors (and timeouts) and 5xx answers are retried with exponential backoff (0.5 s,
doubling, capped at ``max_backoff_s``) for as long as the attempt lives: an API outage of any
length (a restart, an upgrade) must not lose a ``checkpoint_saved`` or the ``done``, and the
platform itself ends an attempt it has given up on (it stops the process, or refuses the token
once the API is back). ``retry_for_s`` bounds the retries where a caller wants that (tools,
tests). The clock and the sleep are injectable so a test can compress an outage's time. 4xx
answers are never retried:

* 401, 403 and 409 raise `CallbackRefused` — the token is bad or stale, or the job is already
  terminal. The client then refuses to send anything else (the trainer must stop training and
  exit without further callbacks).
* any other 4xx (422: a trainer bug) raises `CallbackRejected`.
* exhausted retries (only with a ``retry_for_s``) raise `CallbackUnavailable`.

The client is safe to use from the training thread and the keep-alive thread at once; calls are
serialised so heartbeats reach the backend in the order they were made. The token never appears
in logs or exception messages.

When the attempt is traced, every request carries a W3C ``traceparent`` header (and
``tracestate``): its own client span's, or the inherited context as is (trainer_kit/tracing.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from trainer_kit import tracing

log = logging.getLogger("trainyard.trainer.callbacks")

DoneStatus = Literal["succeeded", "failed", "cancelled"]
REFUSING_STATUSES = frozenset({401, 403, 409})
FIRST_BACKOFF_S = 0.5
# During a long outage a warning per try would flood the trainer's log (and the log tail).
_LOG_EVERY_S = 60.0


class CallbackError(Exception):
    """A callback could not be delivered."""


class CallbackRefused(CallbackError):  # noqa: N818 - reads as "the callback was refused"
    """401/403/409: the backend refuses this attempt's callbacks; training must stop."""

    def __init__(self, kind: str, status_code: int, detail: str = "") -> None:
        self.kind = kind
        self.status_code = status_code
        self.detail = detail
        meaning = {
            401: "token not accepted",
            403: "token belongs to another job or a stale attempt",
            409: "job already terminal",
        }.get(status_code, "refused")
        super().__init__(f"{kind} callback refused with {status_code} ({meaning})")


class CallbackRejected(CallbackError):  # noqa: N818
    """Another 4xx (422 means a malformed body: a trainer bug)."""

    def __init__(self, kind: str, status_code: int, detail: str = "") -> None:
        self.kind = kind
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{kind} callback rejected with {status_code}: {detail[:500]}")


class CallbackUnavailable(CallbackError):  # noqa: N818
    """The backend could not be reached (or kept answering 5xx) within ``retry_for_s``."""


class _Attempt:
    """One POST, tried again by `CallbackClient._deliver`; remembers whether a failed try may
    have been delivered."""

    def __init__(
        self, http: httpx.Client, path: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> None:
        self._http = http
        self._path = path
        self._body = body
        self._headers = headers or None  # the trace context (trainer_kit/tracing.py)
        self.maybe_delivered = False

    def __call__(self) -> httpx.Response:
        try:
            response = self._http.post(self._path, json=self._body, headers=self._headers)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise  # never reached the backend
        except httpx.TransportError:
            self.maybe_delivered = True
            raise
        if response.status_code >= 500:
            self.maybe_delivered = True
            raise _ServerError(response.status_code)
        return response


class _ServerError(Exception):
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(f"server answered {status_code}")


def _finite(value: Any) -> float | None:
    """A JSON-safe float for a metric value, or None for non-numbers, NaN and infinities."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Keep the numeric, finite metric values (JSON has no NaN) as plain floats."""
    cleaned: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        number = _finite(value)
        if number is not None:
            cleaned[str(key)] = number
    return cleaned


def _span_attributes(kind: str, body: Mapping[str, Any]) -> dict[str, str] | None:
    """What a callback's span says besides its kind: the event's type, the done's status."""
    if kind == "event":
        return {"trainyard.event.type": str(body.get("type"))}
    if kind == "done":
        return {"trainyard.done.status": str(body.get("status"))}
    return None


class CallbackClient:
    """Posts callbacks for one job attempt."""

    def __init__(
        self,
        base_url: str,
        job_id: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        retry_for_s: float | None = None,
        max_backoff_s: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        trace: tracing.AttemptTrace | None = None,
    ) -> None:
        """``trace``: the trace the requests' ``traceparent`` comes from (default: the one this
        process's attempt started, `tracing.active`)."""
        self._trace = trace if trace is not None else tracing.active()
        self._job_path = quote(job_id, safe="")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._retry_for_s = retry_for_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._refused: CallbackRefused | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CallbackClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def refused(self) -> CallbackRefused | None:
        """The refusal that closed this client, if any."""
        return self._refused

    # -- callbacks ---------------------------------------------------------------------------

    def heartbeat(
        self,
        *,
        epoch: int,
        epochs: int,
        metrics: Mapping[str, Any] | None,
        elapsed_s: float,
        eta_s: float | None,
        system: Mapping[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "epoch": epoch,
            "epochs": epochs,
            "metrics": clean_metrics(metrics),
            "elapsed_s": round(max(elapsed_s, 0.0), 3),
            "eta_s": None if eta_s is None else round(max(eta_s, 0.0), 3),
        }
        if system is not None:  # trainer_kit/system_metrics.py
            body["system"] = dict(system)
        self._post("heartbeat", body)

    def event(self, type_: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self._post("event", {"type": type_, "message": message, "data": dict(data or {})})

    def done(
        self,
        status: DoneStatus,
        *,
        reason: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        artifacts: Mapping[str, str] | None = None,
    ) -> None:
        self._post(
            "done",
            {
                "status": status,
                "reason": reason,
                "metrics": clean_metrics(metrics),
                "artifacts": dict(artifacts or {}),
            },
        )

    # -- transport ---------------------------------------------------------------------------

    def _post(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            if self._refused is not None:
                raise self._refused
            # A keep-alive heartbeat (no metrics) gets no span of its own (tracing.callback).
            own_span = kind != "heartbeat" or bool(body.get("metrics"))
            with self._trace.callback(
                kind, _span_attributes(kind, body), own_span=own_span
            ) as span:
                path = f"/v1/jobs/{self._job_path}/{kind}"
                attempt = _Attempt(self._http, path, body, span.headers)
                response = self._deliver(kind, attempt)
                span.answered(response.status_code)
            status = response.status_code
            if status == 409 and kind == "done" and attempt.maybe_delivered:
                # An earlier try may have reached the backend (timeout after sending, 5xx after
                # storing): that done spent the token, so this 409 is our own first done.
                log.warning("done answered 409 after an ambiguous failure; taking it as delivered")
                return
            if status in REFUSING_STATUSES:
                self._refused = CallbackRefused(kind, status, response.text)
                raise self._refused
            if status >= 400:
                raise CallbackRejected(kind, status, response.text)

    def _deliver(self, kind: str, attempt: _Attempt) -> httpx.Response:
        """Try until the backend answers below 500 (or ``retry_for_s`` runs out)."""
        started = self._clock()
        backoff = FIRST_BACKOFF_S
        tries = 0
        logged_at = -math.inf
        while True:
            tries += 1
            try:
                return attempt()
            except (httpx.TransportError, _ServerError) as exc:
                failing_for = self._clock() - started
                if self._retry_for_s is not None and failing_for >= self._retry_for_s:
                    raise CallbackUnavailable(
                        f"{kind} callback not delivered after {failing_for:.0f} s "
                        f"({tries} tries): {type(exc).__name__}: {exc}"
                    ) from exc
                if failing_for - logged_at >= _LOG_EVERY_S or tries == 1:
                    logged_at = failing_for
                    log.warning(
                        "%s callback failing for %.0f s (%d tries, last: %s); retrying every "
                        "%.0f s at most until the platform answers",
                        kind,
                        failing_for,
                        tries,
                        f"{type(exc).__name__}: {exc}",
                        self._max_backoff_s,
                    )
            self._sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
