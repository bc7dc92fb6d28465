"""Counts and times the trainers' callbacks by kind and status code.

A pure ASGI middleware, so it sees the status actually sent, whoever decided it (the token
check's 401, a validation 422, the ingest's 202 or a 500) and the whole time to answer. Only
the callback paths pay for more than one regex match, and no job id becomes a label.
"""

from __future__ import annotations

import time
from functools import cache

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainyard.core.listeners import is_callback_path, route_path
from trainyard.observability.metrics import CALLBACK_SECONDS, CALLBACKS


class CallbackMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not is_callback_path(path):
            await self.app(scope, receive, send)
            return
        kind = path.rsplit("/", 1)[1]  # heartbeat | event | done
        started = time.perf_counter()
        code = 500  # an exception nobody turned into a response is answered with a 500

        async def send_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _seconds(kind).observe(time.perf_counter() - started)
            _answered(kind, code).inc()


# A bounded set of children (3 kinds, a few codes), each looked up once: `labels()` on every
# heartbeat would validate and lock each time.
@cache
def _seconds(kind: str) -> Histogram:
    return CALLBACK_SECONDS.labels(kind)


@cache
def _answered(kind: str, code: int) -> Counter:
    return CALLBACKS.labels(kind, str(code))
