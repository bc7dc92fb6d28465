"""The uvicorn internals trainyard relies on (trainyard.core.uvicorn_internals): present in the
installed uvicorn, and a uvicorn that changed them is refused with a message naming its version
and each piece that moved."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from trainyard.core.uvicorn_internals import UvicornInternalsChanged, check_uvicorn_internals
from trainyard.stream.ws_protocol import OutgoingText, send_now_of

from .conftest import run_server


def test_the_installed_uvicorn_has_every_internal_trainyard_relies_on() -> None:
    check_uvicorn_internals()


async def test_every_websocket_served_with_the_send_now_protocol_can_send_at_once() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        send_now = send_now_of(websocket)
        sent = send_now is not None and send_now(OutgoingText("at once"))
        await websocket.send_text(f"sent at once: {sent}")
        await websocket.close()

    with run_server(app) as server:  # served as trainyard-api serves
        async with connect(f"{server.ws_url}/ws") as ws:
            assert [await ws.recv(), await ws.recv()] == ["at once", "sent at once: True"]


class _ServerOfAnotherVersion:
    """As if uvicorn had folded its main loop into `serve` and given on_tick a clock."""

    async def on_tick(self, counter: int, now: float) -> bool:
        return True

    def handle_exit(self, sig: int, frame: object) -> None:
        pass


class _WsProtocolOfAnotherVersion(WebSocketsSansIOProtocol):
    """As if uvicorn had renamed its flow-control event and its disconnected flag."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        del self.writable
        del self.disconnected


def test_a_server_whose_internals_changed_is_refused_naming_the_version_and_each_change() -> None:
    with pytest.raises(UvicornInternalsChanged) as refused:
        check_uvicorn_internals(server_class=cast("type[uvicorn.Server]", _ServerOfAnotherVersion))
    message = str(refused.value)
    assert f"uvicorn {uvicorn.__version__} " in message
    assert "_ServerOfAnotherVersion.main_loop (used by core/quiet_server.py) is missing" in message
    assert "on_tick (used by core/quiet_server.py) takes (counter, now), expected (counter)" in (
        message
    )
    assert "handle_exit" not in message


def test_a_websocket_protocol_without_the_state_it_reads_is_refused() -> None:
    with pytest.raises(UvicornInternalsChanged) as refused:
        check_uvicorn_internals(ws_protocol_class=_WsProtocolOfAnotherVersion)
    message = str(refused.value)
    assert f"uvicorn {uvicorn.__version__} " in message
    assert "has no attribute 'writable'" in message
    assert "has no attribute 'disconnected'" in message
    assert "'conn'" not in message
