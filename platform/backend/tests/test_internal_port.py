"""The internal API on its own port (core/listeners.py): one app served on two real sockets, as
`trainyard-api` serves it with TRAINYARD_INTERNAL_PORT set. The public port refuses the worker's
API (and, when told, the trainers' callbacks); the internal port serves only those and the
probes. Each answer that reaches the app is one the middleware never gives (401, 200, 422), so
"served" and "refused" cannot be confused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from trainyard.cli.embedded import free_local_port
from trainyard.core.listeners import install_port_split, split_ports
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard.stream.ws_protocol import SendNowWebSocketProtocol

from .conftest import make_settings
from .support import INTERNAL_HEADERS

NOT_FOUND = {"detail": "Not Found", "code": "not_found"}
CALLBACK_BODY = {"epoch": 1, "epochs": 3, "metrics": {}}


@dataclass(frozen=True)
class TwoPorts:
    public: str
    internal: str
    public_ws: str


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_on_two_ports(
    tmp_path: Path, temporal_address: str, **overrides: object
) -> Iterator[TwoPorts]:
    """create_app behind the port split, served by one uvicorn server on two sockets in a
    background thread (as conftest.run_server does for one)."""
    public, internal = _listener(), _listener()
    settings = make_settings(
        tmp_path / "data",
        temporal_address,
        internal_port=internal.getsockname()[1],
        **overrides,
    )
    app = split_ports(create_app(settings), settings)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws=SendNowWebSocketProtocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [public, internal]}, daemon=True
    )
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            pytest.fail("the two-port uvicorn test server did not start")
        public_port, internal_port = public.getsockname()[1], internal.getsockname()[1]
        yield TwoPorts(
            f"http://127.0.0.1:{public_port}",
            f"http://127.0.0.1:{internal_port}",
            f"ws://127.0.0.1:{public_port}",
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        public.close()
        internal.close()


def test_the_worker_api_is_refused_on_the_public_port_and_served_on_the_internal_one(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        path = "/internal/v1/jobs/job_0123456789abcdef"
        refused = httpx.get(ports.public + path, headers=INTERNAL_HEADERS)
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND)
        # Whatever the method or a prefix-looking variant: still the worker's API.
        assert httpx.post(ports.public + path + "/events", json={}).status_code == 404
        assert httpx.options(ports.public + "/internal").status_code == 404

        served = httpx.get(ports.internal + path)  # no token: the app's own 401
        assert served.status_code == 401
        found = httpx.get(ports.internal + path, headers=INTERNAL_HEADERS)
        assert found.json()["code"] == "job_not_found"


def test_the_internal_port_serves_nothing_of_the_public_api_but_the_probes(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        assert httpx.get(ports.public + "/v1/jobs").status_code == 200
        for path in ("/v1/jobs", "/v1/frameworks", "/docs", "/openapi.json", "/"):
            answer = httpx.get(ports.internal + path)
            assert (answer.status_code, answer.json()) == (404, NOT_FOUND), path
        for port in (ports.public, ports.internal):
            assert httpx.get(port + "/healthz").json() == {"status": "ok"}
            # Ready or not (Temporal may be slow): an answer of the app, not the split's 404.
            assert httpx.get(port + "/readyz").status_code in (200, 503)


def test_callbacks_are_taken_on_both_ports_by_default(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        for port in (ports.public, ports.internal):
            for kind in ("heartbeat", "event", "done"):
                answer = httpx.post(f"{port}/v1/jobs/job_0123/{kind}", json=CALLBACK_BODY)
                assert answer.status_code == 401, (port, kind)  # reached the token check


def test_callbacks_off_the_public_port_are_taken_on_the_internal_port_only(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address, callbacks_on_public_port=False) as ports:
        for kind in ("heartbeat", "event", "done"):
            refused = httpx.post(f"{ports.public}/v1/jobs/job_0123/{kind}", json=CALLBACK_BODY)
            assert (refused.status_code, refused.json()) == (404, NOT_FOUND), kind
            served = httpx.post(f"{ports.internal}/v1/jobs/job_0123/{kind}", json=CALLBACK_BODY)
            assert served.status_code == 401, kind
        # The public API around them is untouched: the job's own events, its listing.
        assert httpx.get(f"{ports.public}/v1/jobs/job_0123/events").json()["code"] == (
            "job_not_found"
        )


def test_a_websocket_to_a_path_the_port_does_not_serve_is_refused(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        internal_ws = ports.internal.replace("http://", "ws://")
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{internal_ws}/v1/jobs/job_0123/stream", open_timeout=5)
        assert refused.value.response.status_code == 403


def test_without_an_internal_port_one_port_serves_everything(
    tmp_path: Path, temporal_address: str
) -> None:
    settings = make_settings(tmp_path / "data", temporal_address)
    app = create_app(settings)
    assert split_ports(app, settings) is app
    before = len(app.user_middleware)
    install_port_split(app, settings)
    assert len(app.user_middleware) == before


def test_install_port_split_puts_the_split_in_front_of_every_other_middleware(
    tmp_path: Path, temporal_address: str
) -> None:
    settings = make_settings(tmp_path / "data", temporal_address, internal_port=18001)
    app = create_app(settings)
    install_port_split(app, settings)
    first = app.user_middleware[0]  # Starlette runs the first of this list outermost
    assert first.kwargs == {"internal_port": 18001, "callbacks_on_public_port": True}


def _api_env(tmp_path: Path, temporal_address: str, **settings: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")},
        "TRAINYARD_DATA_DIR": str(tmp_path / "data"),
        "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
        "TRAINYARD_LOG_LEVEL": "warning",
        **settings,
    }


def test_trainyard_api_listens_on_both_ports(tmp_path: Path, temporal_address: str) -> None:
    public, internal = free_local_port(), free_local_port()
    while internal == public:
        internal = free_local_port()
    env = _api_env(
        tmp_path,
        temporal_address,
        TRAINYARD_API_PORT=str(public),
        TRAINYARD_INTERNAL_PORT=str(internal),
    )
    process = subprocess.Popen([sys.executable, "-m", "trainyard.api"], env=env)
    try:
        for port in (public, internal):
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    pytest.fail(f"trainyard-api exited with {process.returncode}")
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"nothing listened on port {port} within 30 s")
                    time.sleep(0.1)
            assert answer.json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_trainyard_api_fails_to_start_when_the_internal_port_is_taken(
    tmp_path: Path, temporal_address: str
) -> None:
    with _listener() as taken:
        taken.listen()
        env = _api_env(
            tmp_path,
            temporal_address,
            TRAINYARD_API_PORT=str(free_local_port()),
            TRAINYARD_INTERNAL_PORT=str(taken.getsockname()[1]),
        )
        ran = subprocess.run(
            [sys.executable, "-m", "trainyard.api"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert ran.returncode == 3  # uvicorn's STARTUP_FAILURE
    assert "in use" in ran.stderr


def test_the_settings_refuse_an_internal_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="internal_port"):
        BackendSettings(internal_port=0)
