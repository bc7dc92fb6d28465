"""The API's uvicorn server (trainyard.core.quiet_server): it serves as uvicorn does, wakes once a
second when idle instead of ten times, and stops at once on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from trainyard.cli.embedded import free_local_port

_SERVE = """
import sys, uvicorn
from trainyard.core.quiet_server import QuietServer

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

server_class = QuietServer if sys.argv[1] == "quiet" else uvicorn.Server
server_class(uvicorn.Config(app, port=int(sys.argv[2]), log_level="warning")).run()
"""
_IDLE_S = 3.0


def _wake_ups(pid: int) -> int:
    """The main thread's voluntary context switches so far: each is a wake-up after a wait."""
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("vol"))


def _serve(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_local_port()
    process = subprocess.Popen([sys.executable, "-c", _SERVE, kind, str(port)])
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return process, url
        except httpx.TransportError:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)


def test_the_quiet_server_serves_wakes_once_a_second_and_stops_at_once() -> None:
    process, url = _serve("quiet")
    try:
        response = httpx.get(url)
        assert response.text == "ok"
        assert abs(parsedate_to_datetime(response.headers["date"]).timestamp() - time.time()) < 5

        before = _wake_ups(process.pid)
        time.sleep(_IDLE_S)
        assert _wake_ups(process.pid) - before < 2 * _IDLE_S + 3

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM  # as uvicorn: re-raised once stopped
    finally:
        process.kill()
        process.wait()


def test_uvicorns_own_server_wakes_ten_times_a_second() -> None:
    """Why QuietServer exists; if uvicorn stops doing this, it can go."""
    process, _ = _serve("uvicorn")
    try:
        before = _wake_ups(process.pid)
        time.sleep(_IDLE_S)
        assert _wake_ups(process.pid) - before > 5 * _IDLE_S
    finally:
        process.kill()
        process.wait()
