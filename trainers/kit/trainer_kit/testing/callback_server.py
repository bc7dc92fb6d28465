"""A recording stand-in for the platform's callback endpoints (``POST /v1/jobs/{id}/<kind>``):
a real HTTP server on a free local port that answers every callback with the status a test
picks and records what it received (and, when asked, which local process sent it)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Call:
    kind: str
    path: str
    authorization: str | None
    body: dict[str, Any]
    status: int
    at: float
    pid: int | None = None  # the sending process, when the server tracks senders
    traceparent: str | None = None  # the W3C trace context it was sent with
    tracestate: str | None = None


Responder = Callable[[str, dict[str, Any]], int]


@dataclass
class CallbackServer:
    """Records every callback; `responder(kind, body)` picks the HTTP status (default 202).
    With ``track_senders`` each call also records the pid of the local process that sent it
    (a test of which process reports)."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    responder: Responder = field(default=lambda kind, body: 202)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    track_senders: bool = False

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


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of this host's TCP socket from ``local_port`` to ``remote_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote = fields[1], fields[2]
            if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (
                local_port,
                remote_port,
            ):
                return fields[9]
    return None


def sender_pid(client_port: int, server_port: int) -> int | None:
    """The pid of the local process holding the client end of a connection to ``server_port``
    from ``client_port`` (Linux: /proc/net/tcp, then the processes' open descriptors)."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for descriptors in Path("/proc").glob("[0-9]*/fd"):
        try:
            for descriptor in descriptors.iterdir():
                if os.readlink(descriptor) == target:
                    return int(descriptors.parent.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


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
            pid = None
            if server_state.track_senders:  # while the connection is open
                pid = sender_pid(self.client_address[1], self.connection.getsockname()[1])
            server_state.record(
                Call(
                    kind=kind,
                    path=self.path,
                    authorization=self.headers.get("Authorization"),
                    body=body,
                    status=status,
                    at=time.monotonic(),
                    pid=pid,
                    traceparent=self.headers.get("traceparent"),
                    tracestate=self.headers.get("tracestate"),
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
