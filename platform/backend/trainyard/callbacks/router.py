"""Trainer callbacks: POST /v1/jobs/{id}/heartbeat|event|done (docs/trainer-contract.md).

Answers: 202 stored; 401 token missing or not ours; 403 token of another job or of an older
attempt; 409 job already terminal; 422 malformed body. A refused callback changes nothing.
The token's signature and job are checked in a dependency, before the body is validated, so
a bad token is a 401/403 whatever the body (only undecodable JSON is a 422 first, as FastAPI
parses JSON before it solves dependencies).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from trainyard.callbacks import service
from trainyard.callbacks.ingest import ingest_for
from trainyard.callbacks.schemas import Done, Heartbeat, TrainerEvent
from trainyard.callbacks.tokens import InvalidToken, TokenClaims, verify
from trainyard.core.errors import Forbidden, TrainyardError, Unauthorized, error_responses
from trainyard.core.media_types import json_subtype
from trainyard.deps import SessionDep, Temporal
from trainyard.jobs.schemas import EventRead
from trainyard.observability.heartbeat_sampling import HEARTBEAT_REQUESTS
from trainyard.runtime import runtime_of
from trainyard_workflows.telemetry.logs import bind_job

router = APIRouter(
    prefix="/v1/jobs",
    tags=["trainer callbacks"],
    responses=error_responses(400, 401, 403, 404, 409, 422),
)

_bearer = HTTPBearer(auto_error=False, scheme_name="CallbackToken")


# The dependencies of the callbacks are `async def` on purpose: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per dependency per heartbeat.
async def callback_claims(
    job_id: Annotated[str, Path()],
    connection: HTTPConnection,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    token = None if credentials is None else credentials.credentials
    return _claims(connection, job_id, token)


def _claims(connection: HTTPConnection, job_id: str, token: str | None) -> TokenClaims:
    if token is None:
        raise Unauthorized("missing callback token (Authorization: Bearer <token>)")
    keys = runtime_of(connection).settings.callback_keys
    try:
        claims = verify(keys, token)
    except InvalidToken as exc:
        raise Unauthorized(f"callback token refused: {exc}") from exc
    if claims.job_id != job_id:
        raise Forbidden(f"the callback token belongs to another job, not {job_id}")
    bind_job(claims.job_id, claims.attempt)  # from the verified claims: this request's lines
    return claims


Claims = Annotated[TokenClaims, Depends(callback_claims)]


def _bearer_token(request: Request) -> str | None:
    # What HTTPBearer(auto_error=False) accepts: "<scheme> <credentials>", scheme any case.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


_NO_BODY = object()


def _json_body(raw: bytes, content_type: str | None) -> Any:
    """The body as FastAPI reads it for a model parameter, with FastAPI's errors."""
    if not raw:
        return _NO_BODY
    if json_subtype(content_type) is None:
        return raw  # not JSON: handed to validation as it is, which refuses it
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def _heartbeat_body(raw: bytes, content_type: str | None) -> Heartbeat:
    if raw and content_type == "application/json":
        try:
            return Heartbeat.model_validate_json(raw)
        except ValidationError:
            pass  # answered below exactly as FastAPI would (its messages, its field names)
    body = _json_body(raw, content_type)
    if body is _NO_BODY:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return Heartbeat.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc


_tracer = trace.get_tracer(__name__)
_W3C = TraceContextTextMapPropagator()
HEARTBEAT_PATH = f"{router.prefix}/{{job_id}}/heartbeat"
# Its server span is made here, not by the generic ASGI instrumentation, which collects every
# request's attributes before a sampler could drop it: here only the 1 heartbeat in N that is
# traced (observability.heartbeat_sampling) touches OpenTelemetry.
HEARTBEAT_SPAN = f"POST {HEARTBEAT_PATH}"


async def _heartbeat_handler(request: Request) -> Response:
    """The heartbeat route with no dependency injection, body model or response model.

    Same answers as the FastAPI-solved route it replaces at run time (the declared endpoint
    below still documents it in OpenAPI): token, then body, then the group-commit ingest.
    """
    if not HEARTBEAT_REQUESTS.keep():
        return await _heartbeat_answer(request)
    with _tracer.start_as_current_span(
        HEARTBEAT_SPAN,
        context=_W3C.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={HTTP_ROUTE: HEARTBEAT_PATH, "http.request.method": "POST"},
    ) as span:
        response = await _heartbeat_answer(request)
        if span.is_recording():
            span.set_attribute("http.response.status_code", response.status_code)
        return response


async def _heartbeat_answer(request: Request) -> Response:
    raw = await request.body()
    content_type = request.headers.get("content-type")
    try:
        claims = _claims(request, request.path_params["job_id"], _bearer_token(request))
    except TrainyardError:
        _json_body(raw, content_type)  # undecodable JSON is a 422 before any token check
        raise
    beat = _heartbeat_body(raw, content_type)
    # The hot path (callbacks.ingest): stored with other heartbeats in one transaction, and
    # answered with the event as published, already JSON-ready (no second validation).
    event = await ingest_for(runtime_of(request).db).heartbeat(claims, beat)
    return JSONResponse(event, status_code=status.HTTP_202_ACCEPTED)


class _HeartbeatRoute(APIRoute):
    """FastAPI documents the declared endpoint; requests go to `_heartbeat_handler`.

    Heartbeats are the busiest route by far: solving the dependencies, validating the body
    through FastAPI and the response model cost more server CPU than storing the heartbeat.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _heartbeat_handler


async def heartbeat(body: Heartbeat, claims: Claims) -> EventRead:
    """Liveness and progress; the first one moves the job to RUNNING."""
    raise AssertionError("served by _heartbeat_handler")  # pragma: no cover


router.add_api_route(
    "/{job_id}/heartbeat",
    heartbeat,
    methods=["POST"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventRead,
    route_class_override=_HeartbeatRoute,
)


@router.post("/{job_id}/event", status_code=status.HTTP_202_ACCEPTED, response_model=EventRead)
async def event(body: TrainerEvent, claims: Claims, session: SessionDep) -> EventRead:
    """Something worth showing on the job's timeline."""
    return EventRead.model_validate(await service.trainer_event(session, claims, body))


@router.post("/{job_id}/done", status_code=status.HTTP_202_ACCEPTED, response_model=EventRead)
async def done(body: Done, claims: Claims, session: SessionDep, temporal: Temporal) -> EventRead:
    """The attempt finished; the job ends and the token is spent."""
    return EventRead.model_validate(await service.done(session, temporal, claims, body))
