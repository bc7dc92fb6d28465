"""One error hierarchy for the whole backend, mapped to HTTP in one place.

Services raise these (never HTTPException). Every error answer has the same body:

    {"detail": "<human message>", "code": "<machine code>",
     "errors": [{"field": "<field>", "message": "<why>"}]}

`errors` is only present on 422 and names each offending field (`model`,
`hyperparameters.lr0`, `limit`, ...). `detail` is always a string, so clients can print it.
`ErrorBody` is that shape as a model: every route documents its error answers with it
(`error_responses`), so the OpenAPI, and the clients generated from it, describe what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from trainyard.core.body_limits import REQUEST_TOO_LARGE
from trainyard.core.http_methods import MethodsMiddleware, allowed_methods


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class FieldErrorBody(BaseModel):
    field: str = Field(description="the offending field, e.g. `hyperparameters.lr0`")
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer (each 4xx and 5xx)."""

    detail: str = Field(description="what went wrong, for people")
    code: str = Field(description="a stable machine code, e.g. `job_not_found`")
    errors: list[FieldErrorBody] = Field(
        default_factory=list, description="on 422 only: each offending field and why"
    )


_ERROR_MEANINGS = {
    400: "A body that cannot be read (not UTF-8)",
    401: "Not signed in, or a credential (token, API key, callback token) that is not valid",
    403: "Not allowed: a role too weak, a token for another job, a foreign origin or host",
    404: "No such resource (or not in a project of yours)",
    409: "Conflicts with the resource's state",
    413: "Too large",
    415: "Unsupported content type",
    422: "Invalid input: `errors` names each field",
    503: "A service it needs is unavailable; try again",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's error answers, all with `ErrorBody`."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_MEANINGS[status]} for status in statuses
    }


# What any route that needs a signed-in caller may also answer: not signed in (401), a role
# too weak (403), a project or object that is not theirs (404), a malformed project header (422).
SIGNED_IN_RESPONSES = error_responses(401, 403, 404, 422)


class TrainyardError(Exception):
    """Base of every domain error: an HTTP status, a stable code and a message for people."""

    status_code: int = 400
    code: str = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code}


class NotFound(TrainyardError):
    status_code = 404
    code = "not_found"


class Conflict(TrainyardError):
    status_code = 409
    code = "conflict"


class Unauthorized(TrainyardError):
    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012  (never mutated)


class Forbidden(TrainyardError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(TrainyardError):
    status_code = 503
    code = "unavailable"


# An error body echoes at most this much of what the client sent: field paths (a client's own
# keys), messages that quote a value (a zip entry's name), and how many errors are listed.
MAX_ECHOED_FIELD = 200
MAX_ECHOED_MESSAGE = 500
MAX_LISTED_ERRORS = 20


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _bounded(errors: Sequence[FieldError]) -> list[FieldError]:
    kept = [
        FieldError(_clipped(e.field, MAX_ECHOED_FIELD), _clipped(e.message, MAX_ECHOED_MESSAGE))
        for e in errors[:MAX_LISTED_ERRORS]
    ]
    if len(errors) > MAX_LISTED_ERRORS:
        kept.append(FieldError("body", f"and {len(errors) - MAX_LISTED_ERRORS} more errors"))
    return kept


class InvalidRequest(TrainyardError):
    """422 raised by a service for input that is well-formed but refers to something invalid.
    Its body is bounded (`_bounded`) whatever the input, so it never echoes a large request."""

    status_code = 422
    code = "invalid_request"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = _bounded(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))

    @classmethod
    def on(cls, field: str, message: str) -> InvalidRequest:
        return cls([FieldError(field, message)])

    def body(self) -> dict[str, Any]:
        return {
            **super().body(),
            "errors": [{"field": e.field, "message": e.message} for e in self.errors],
        }


def _field_name(loc: Sequence[int | str]) -> str:
    # FastAPI prefixes the source ("body", "query", "path", "header"); the field is what a
    # client typed, so drop the prefix: ("body", "hyperparameters", "lr0") -> hyperparameters.lr0.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """Pydantic's error list, reduced to field + message (no input echo: it may hold NaN)."""
    errors = []
    for item in raw:
        loc = item.get("loc", ()) if isinstance(item, dict) else ()
        message = item.get("msg", str(item)) if isinstance(item, dict) else str(item)
        errors.append(FieldError(_field_name(loc), str(message)))
    return errors


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one body shape above; nothing caused by input answers 500.
    HEAD and OPTIONS are answered for every path, and a 405 names every method of its path."""

    async def on_trainyard_error(connection: HTTPConnection, exc: Exception) -> JSONResponse | None:
        assert isinstance(exc, TrainyardError)
        if isinstance(connection, WebSocket):
            # A refused stream (not signed in, not theirs) closes with 4000 + the HTTP status
            # and the reason, which a browser can read (a refused handshake says nothing).
            if connection.client_state == WebSocketState.CONNECTING:
                await connection.accept()
            reason = exc.message.encode()[:120].decode(errors="ignore")
            await connection.close(code=4000 + exc.status_code, reason=reason)
            return None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error = InvalidRequest(field_errors(exc.errors()))
        return JSONResponse(error.body(), status_code=422)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: REQUEST_TOO_LARGE,  # a streamed body over its limit (core/body_limits.py)
        }.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names only the methods of the first route it tried for the path.
            allow = allowed_methods(request.app.routes, request.scope["path"])
            headers = {**(headers or {}), "Allow": ", ".join(allow)}
        return JSONResponse(
            {"detail": str(exc.detail), "code": code},
            status_code=exc.status_code,
            headers=headers,
        )

    async def on_websocket_validation_error(websocket: WebSocket, exc: Exception) -> None:
        # Accept first: a close before the handshake reaches the client as a bare HTTP 403,
        # while a close frame carries the policy code and says which parameter was wrong.
        assert isinstance(exc, WebSocketRequestValidationError)
        reason = InvalidRequest(field_errors(exc.errors())).message
        if websocket.client_state == WebSocketState.CONNECTING:
            await websocket.accept()
        await websocket.close(code=1008, reason=reason.encode()[:120].decode(errors="ignore"))

    async def on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: same body shape, no internals leaked; uvicorn logs the trace.
        return JSONResponse(
            {"detail": "internal error; see the API log", "code": "internal_error"},
            status_code=500,
        )

    # Starlette calls it with the Request or the WebSocket; its stubs want two handlers.
    app.add_exception_handler(TrainyardError, cast(Any, on_trainyard_error))
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_exception_handler(WebSocketRequestValidationError, on_websocket_validation_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(MethodsMiddleware)
