"""A recording stand-in for the platform's callback endpoints (``POST /v1/jobs/{id}/<kind>``):
a real HTTP server on a free local port that answers every callback with the status a test
picks and records what it received."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    kind: str
    path: str
    authorization: str | None
    body: dict[str, Any]
    status: int
    at: float


Responder = Callable[[str, dict[str, Any]], int]


@dataclass
class CallbackServer:
    """Records every callback; `responder(kind, body)` picks the HTTP status (default 202)."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    responder: Responder = field(default=lambda kind, body: 202)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def record(self, call: Call) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.snapshot() if c.kind == kind]

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.calls):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True


def _handler(server_state: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {"_invalid_json": raw.decode("utf-8", "replace")}
            kind = self.path.rstrip("/").rsplit("/", 1)[-1]
            status = server_state.responder(kind, body)
            server_state.record(
                Call(
                    kind=kind,
                    path=self.path,
                    authorization=self.headers.get("Authorization"),
                    body=body,
                    status=status,
                    at=time.monotonic(),
                )
            )
            payload = json.dumps({"detail": "recorded"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)  # the trainer may have been killed meanwhile

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve_callbacks() -> Iterator[CallbackServer]:
    """A recording callback server on a free local port, for as long as the block runs."""
    state = CallbackServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
