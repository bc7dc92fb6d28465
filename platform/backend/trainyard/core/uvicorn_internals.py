"""The parts of uvicorn that are not its public API and that trainyard relies on, in one place.

Two modules reach past `uvicorn.Config` and `Server.run`, each for a figure it was measured by:
- `stream/ws_protocol.py` subclasses the sans-I/O WebSocket protocol, wraps its `app` to put
  the stream's synchronous send in the scope, and reads its connection state to tell whether a
  frame can be written at once (decision 009);
- `core/quiet_server.py` replaces `Server.main_loop` to wake once a second (decision 010).
None of it is documented, so platform/backend/pyproject.toml pins uvicorn to the minor version it
was written against. `check_uvicorn_internals()` runs when `trainyard-api` starts and in
tests/test_uvicorn_internals.py: on a uvicorn whose internals moved it fails at once, naming
the version and each missing piece, rather than leaving a stream that fails on every connection
or a server that never ticks.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.server import ServerProtocol


@dataclass(frozen=True)
class Method:
    name: str
    parameters: tuple[str, ...]  # after self, by name
    coroutine: bool


# What QuietServer overrides or calls.
SERVER_METHODS = (
    Method("main_loop", (), coroutine=True),
    Method("on_tick", ("counter",), coroutine=True),
    Method("handle_exit", ("sig", "frame"), coroutine=False),
)
# How uvicorn's HTTP protocols construct the WebSocket protocol on an upgrade (by keyword);
# SendNowWebSocketProtocol passes them through to its own set-up.
WS_PROTOCOL_METHODS = (Method("__init__", ("config", "server_state", "app_state", "_loop"), False),)
# Set in the protocol's __init__; SendNowWebSocketProtocol wraps `app` and reads the rest.
WS_PROTOCOL_STATE = (
    "app",
    "handshake_complete",
    "initial_response",
    "close_sent",
    "disconnected",
    "writable",
    "transport",
    "conn",
)


class UvicornInternalsChanged(RuntimeError):
    """The installed uvicorn lacks an internal that trainyard relies on."""


def check_uvicorn_internals(
    server_class: type[uvicorn.Server] = uvicorn.Server,
    ws_protocol_class: type[WebSocketsSansIOProtocol] = WebSocketsSansIOProtocol,
) -> None:
    """Raise `UvicornInternalsChanged` listing every internal that is missing or changed."""
    problems = _method_problems(server_class, SERVER_METHODS, "core/quiet_server.py")
    construction = _method_problems(ws_protocol_class, WS_PROTOCOL_METHODS, "stream/ws_protocol.py")
    # A protocol built with other arguments cannot be built here to look at its state.
    problems += construction or _ws_state_problems(ws_protocol_class)
    if problems:
        raise UvicornInternalsChanged(
            f"uvicorn {uvicorn.__version__} is not the version trainyard's use of its internals "
            "was written against (see the pin in platform/backend/pyproject.toml and "
            "trainyard/core/uvicorn_internals.py):\n" + "\n".join(f"- {p}" for p in problems)
        )


def _method_problems(cls: type, methods: tuple[Method, ...], user: str) -> list[str]:
    problems = []
    for method in methods:
        where = f"{cls.__qualname__}.{method.name} (used by {user})"
        function = getattr(cls, method.name, None)
        if not callable(function):
            problems.append(f"{where} is missing")
            continue
        parameters = tuple(inspect.signature(function).parameters)[1:]  # without self
        if parameters != method.parameters:
            takes, expected = ", ".join(parameters), ", ".join(method.parameters)
            problems.append(f"{where} takes ({takes}), expected ({expected})")
        if inspect.iscoroutinefunction(function) != method.coroutine:
            kind = "a coroutine function" if method.coroutine else "a plain function"
            problems.append(f"{where} is no longer {kind}")
    return problems


def _ws_state_problems(cls: type[WebSocketsSansIOProtocol]) -> list[str]:
    """Build one protocol, as uvicorn does on an upgrade, and look at the state it set up."""

    async def no_app(scope: object, receive: object, send: object) -> None:
        raise NotImplementedError  # never called: no connection is made

    config = uvicorn.Config(no_app, log_config=None)
    config.load()
    loop = asyncio.new_event_loop()  # stored, never run
    try:
        protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    finally:
        loop.close()
    where = f"{cls.__qualname__}() (used by stream/ws_protocol.py)"
    problems = [
        f"{where} has no attribute {name!r}"
        for name in WS_PROTOCOL_STATE
        if not hasattr(protocol, name)
    ]
    if hasattr(protocol, "writable") and not isinstance(protocol.writable, asyncio.Event):
        problems.append(f"{where}.writable is not an asyncio.Event")
    if hasattr(protocol, "conn") and not isinstance(protocol.conn, ServerProtocol):
        problems.append(f"{where}.conn is not a websockets ServerProtocol")
    return problems
