"""A bound on every request body, before anything reads it (pure ASGI).

A body that declares a Content-Length over the limit is answered 413 at once: the app never
runs. A body without one (chunked) is counted as it streams in and the read that passes the
limit raises `RequestBodyTooLarge`, which the one error handler answers with 413 (see
core/errors.py); whatever read it has parsed and stored nothing yet.

A body that declares a length within the limit is not wrapped at all: the HTTP server already
stops it at that length (h11 and httptools both enforce Content-Length framing), so the
heartbeat ingest, the most frequent request, pays one pass over its headers and no more.

Multipart bodies get their own, larger limit on the paths that take uploads only; anywhere
else a multipart body is held to the JSON limit like any other.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_TOO_LARGE = "request_too_large"


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit. A Starlette HTTPException,
    so FastAPI's body parsing lets it through to the error handler untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


class BodyLimits:
    """`json_limit` bytes for any body; `multipart_limit` for multipart bodies sent to one of
    `multipart_paths`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_limit: int,
        multipart_limit: int,
        multipart_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.json_limit = json_limit
        self.multipart_limit = multipart_limit
        self.multipart_paths = multipart_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        multipart = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"content-type":
                multipart = value[:19].lower() == b"multipart/form-data"
        limit = self.json_limit
        if multipart and scope["path"] in self.multipart_paths:
            limit = self.multipart_limit
        if declared is not None and declared > limit:
            response = JSONResponse(
                {"detail": too_large_message(limit), "code": REQUEST_TOO_LARGE}, status_code=413
            )
            await response(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _counted(receive, limit), send)


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestBodyTooLarge(limit)
        return message

    return counted_receive
