"""A relay between a trainer and the API for the throughput bench: the trainer's callbacks
reach the bench the moment they are sent, whether or not the platform is stopped.

Each callback is answered at once (202), shown to `observe` (the bench learns when an epoch
ended from its heartbeat), and queued; one thread forwards the queue to the API in order, with
the trainer's own headers (its token), so the platform stores and relays every callback as it
would have from the trainer. While the platform is stopped (bench/platform_freeze.py) the
forwarding waits and the trainer goes on; the API's answers are not the trainer's to see, so a
refusal is kept in `refusals` for the bench to report, and how long each forwarded callback
took to be answered in `answers`: the API's answer time, as the trainer would have seen it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

Observer = Callable[[str, dict[str, Any]], None]
_FORWARDED_HEADERS = ("Authorization", "Content-Type")
# Only the bench's stops hold a callback back, for one epoch (seconds): far below this.
_FORWARD_TIMEOUT_S = 120.0
_FORWARD_TRIES = 5


class CallbackRelay:
    """Serves the trainer's callback URL (`url`) and forwards every callback to `api_url`."""

    def __init__(self, api_url: str, observe: Observer) -> None:
        self._observe = observe
        self._queue: queue.Queue[tuple[str, dict[str, str], bytes] | None] = queue.Queue()
        self._api = httpx.Client(base_url=api_url, timeout=_FORWARD_TIMEOUT_S)
        self.refusals: list[str] = []
        self.answers: list[tuple[float, float]] = []  # (when sent, seconds to the answer)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._serving = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._forwarding = threading.Thread(target=self._forward, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CallbackRelay:
        self._serving.start()
        self._forwarding.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._queue.put(None)  # after everything already queued
        self._forwarding.join(timeout=_FORWARD_TIMEOUT_S)
        self._api.close()

    def drained(self) -> bool:
        """Whether every callback received so far has been forwarded."""
        return self._queue.unfinished_tasks == 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {
                    name: value
                    for name in _FORWARDED_HEADERS
                    if (value := self.headers.get(name)) is not None
                }
                relay._observe(self.path, json.loads(body) if body else {})
                relay._queue.put((self.path, headers, body))
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _forward(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._post(*item)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> None:
        # As the trainer's own client does: a connection the API closed while it was idle
        # (its keep-alive timer runs out as the API goes on after a stop) is tried again.
        retrying = Retrying(
            retry=retry_if_exception_type(httpx.TransportError),
            stop=stop_after_attempt(_FORWARD_TRIES),
            wait=wait_exponential(multiplier=0.2, max=2),
            reraise=True,
        )
        sent, started = time.time(), time.monotonic()
        try:
            response = retrying(self._api.post, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.refusals.append(f"{path}: {type(exc).__name__}: {exc}")
            return
        self.answers.append((sent, time.monotonic() - started))
        if response.status_code >= 400:
            self.refusals.append(f"{path}: {response.status_code} {response.text[:200]}")
