"""uvicorn's WebSocket protocol plus a synchronous send for the stream's fan-out.

Why: relaying one event to 1000 clients of a job through ASGI means waking 1000 tasks, one
per client, each awaiting its own queue and then `send`. Measured with 1000 clients on two
cores (bench/live_paths.py relay) the wake-ups alone cost as much as the writes: ~56 ms per
event against ~19 ms for writing the same frames from one loop. A synchronous "send now if
that needs no waiting" lets one loop per job write to every client that keeps up
(`fanout.py`); a client that cannot take a frame at once keeps its own task and buffer.

The ASGI scope of each WebSocket connection gets the extension `trainyard.websocket.send_now`
with a `send_text` callable taking an `OutgoingText`: it writes the message as one text
frame and returns True, or writes nothing and returns False when the frame would have to
wait (the client reads slowly, so the transport paused writing; the connection is closing,
closed or not yet accepted). Under
another ASGI server the extension is absent and every client relays from its own task:
slower, same stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import State

SEND_NOW_EXTENSION = "trainyard.websocket.send_now"


class OutgoingText:
    """One text message sent to many connections. A server's frames are not masked, so the
    frame of every connection without extensions is the same bytes: built once, on first use
    (with permessage-deflate each connection compresses it itself)."""

    __slots__ = ("_data", "_frame", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._data: bytes | None = None
        self._frame: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.text.encode()
        return self._data

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = Frame(Opcode.TEXT, self.data).serialize(mask=False, extensions=[])
        return self._frame


SendNow = Callable[[OutgoingText], bool]


class SendNowWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol (`ws="websockets-sansio"`) with `send_now`.

    It relies on that protocol's undocumented state: core/uvicorn_internals.py lists what, and
    checks it at start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app, extension = self.app, {"send_text": self.send_text_now}

        async def app_with_send_now(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions[SEND_NOW_EXTENSION] = extension
            await app(scope, receive, send)

        self.app = app_with_send_now

    def send_text_now(self, message: OutgoingText) -> bool:
        """Write `message` as one frame at once; False, with nothing written, if it cannot be."""
        if (
            not self.handshake_complete
            or self.initial_response is not None
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()  # paused: the client's buffers are full
            or self.transport.is_closing()
        ):
            return False
        conn = self.conn
        if not conn.extensions and conn.state is State.OPEN:
            # What conn.send_text would write, minus building the same frame once per client.
            self.transport.write(message.frame)
            return True
        try:
            conn.send_text(message.data)
        except InvalidState:
            return False
        self.transport.write(b"".join(conn.data_to_send()))
        return True


def send_now_of(websocket: WebSocket) -> SendNow | None:
    """The connection's synchronous send, when its server offers one."""
    extension = (websocket.scope.get("extensions") or {}).get(SEND_NOW_EXTENSION)
    if extension is None:
        return None
    send_text: SendNow = extension["send_text"]
    return send_text
