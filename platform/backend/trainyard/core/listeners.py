"""The API's two listeners: what the public port serves and what the internal port serves.

With `TRAINYARD_INTERNAL_PORT` set, `trainyard-api` serves one app on two sockets. The public
port (`TRAINYARD_API_PORT`, behind the Ingress) never serves the worker's `/internal/*` API
nor `/metrics`, nor, when `TRAINYARD_CALLBACKS_ON_PUBLIC_PORT` is false, the trainers'
callbacks. The internal port (a ClusterIP Service that only the worker and trainer pods, and
Prometheus, may reach) serves only those, the probes and `/metrics`. Unset (the embedded
tier), one port serves everything, as before.

The port a request came in on is the one in the ASGI scope's `server`, which uvicorn takes
from the accepting socket: no header a client sends can change it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from trainyard.core.errors import NotFound
from trainyard.core.settings import BackendSettings

INTERNAL_PREFIX = "/internal/"
# POST /v1/jobs/{id}/heartbeat|event|done (callbacks/router.py, docs/trainer-contract.md).
CALLBACK_PATH = re.compile(r"/v1/jobs/[^/]+/(?:heartbeat|event|done)")
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
# Prometheus scrapes the internal port (observability/router.py); never the public one.
METRICS_PATH = "/metrics"


def is_internal_path(path: str) -> bool:
    return path.startswith(INTERNAL_PREFIX) or path == INTERNAL_PREFIX.rstrip("/")


def is_callback_path(path: str) -> bool:
    return CALLBACK_PATH.fullmatch(path) is not None


def served_on_internal_port(path: str) -> bool:
    """The internal port: the worker's API, the trainers' callbacks, the probes and the
    metrics only."""
    return (
        is_internal_path(path)
        or is_callback_path(path)
        or path in PROBE_PATHS
        or path == METRICS_PATH
    )


def served_on_public_port(path: str, *, callbacks_on_public_port: bool) -> bool:
    """The public port: everything but the worker's API and the metrics (and the callbacks,
    unless trainers reach the platform through the Ingress)."""
    if is_internal_path(path) or path == METRICS_PATH:
        return False
    return callbacks_on_public_port or not is_callback_path(path)


def pod_scrape(settings: BackendSettings) -> Callable[[Scope], bool] | None:
    """With the ports split: whether a request is a read of /metrics on the internal port.
    Prometheus addresses each pod by its IP, a Host no allowed-hosts list can name, and no
    browser reaches that port, so the Host check (auth.same_origin) does not apply to it."""
    internal_port = settings.internal_port
    if internal_port is None:
        return None  # the single (loopback) port: a browser's page could rebind a name to it

    def is_pod_scrape(scope: Scope) -> bool:
        server = scope.get("server")
        return (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and server is not None
            and server[1] == internal_port
            and route_path(scope) == METRICS_PATH
        )

    return is_pod_scrape


def route_path(scope: Scope) -> str:
    # The router matches the path without the root path (a proxy's prefix): so must we, or a
    # prefixed request would be judged by another path than the one it is routed by.
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


class PortSplit:
    """Pure ASGI middleware: a 404 (the house's error body) for what the port does not serve.

    Outermost, so nothing else (authentication, the methods middleware) runs for it.
    """

    def __init__(self, app: ASGIApp, *, internal_port: int, callbacks_on_public_port: bool):
        self.app = app
        self.internal_port = internal_port
        self.callbacks_on_public_port = callbacks_on_public_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        # No server address (a Unix socket, an in-process client): the public rules, the
        # stricter side for the worker's API.
        internal = server is not None and server[1] == self.internal_port
        path = route_path(scope)
        if internal:
            served = served_on_internal_port(path)
        else:
            served = served_on_public_port(
                path, callbacks_on_public_port=self.callbacks_on_public_port
            )
        if served:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            error = NotFound("Not Found")
            await JSONResponse(error.body(), status_code=error.status_code)(scope, receive, send)
        else:
            # A close before the handshake: the server answers the upgrade with 403.
            await send({"type": "websocket.close", "code": 1008})


def split_ports(app: ASGIApp, settings: BackendSettings) -> ASGIApp:
    """`app` behind PortSplit when `settings.internal_port` is set; `app` itself otherwise."""
    if settings.internal_port is None:
        return app
    return PortSplit(
        app,
        internal_port=settings.internal_port,
        callbacks_on_public_port=settings.callbacks_on_public_port,
    )


def install_port_split(app: Starlette, settings: BackendSettings) -> None:
    """Put PortSplit in front of `app`'s middleware when `settings.internal_port` is set.
    Call it after every other `add_middleware`: the last one added runs first."""
    if settings.internal_port is not None:
        app.add_middleware(
            PortSplit,
            internal_port=settings.internal_port,
            callbacks_on_public_port=settings.callbacks_on_public_port,
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, as uvicorn binds one (IPv6 when host has a colon).
    Raises OSError when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def listening_sockets(settings: BackendSettings) -> list[socket.socket] | None:
    """The public and the internal socket, or None (uvicorn binds the single port itself)
    when no internal port is set. Raises OSError when a port is taken."""
    if settings.internal_port is None:
        return None
    public = bind(settings.api_host, settings.api_port)
    try:
        return [public, bind(settings.api_host, settings.internal_port)]
    except OSError:
        public.close()
        raise
