"""The methods of a path, as HTTP says a server should report them.

Each FastAPI route has its own methods, and a path often has several routes (`GET /v1/jobs`
and `POST /v1/jobs`). Starlette answers a method no route of the path takes with the `Allow`
of the first route it tried, and FastAPI routes take neither HEAD nor OPTIONS. Here, every
method of every route of the path counts: a 405 lists them all (`allowed_methods`, used by the
error handler), OPTIONS answers 204 with them, and HEAD is GET without the body
(`MethodsMiddleware`). Only HEAD and OPTIONS requests pass through more than one comparison,
so the trainers' callbacks keep their speed.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REPORTED_ALWAYS = ("OPTIONS",)


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """Every method some route of `path` takes (HEAD with GET, and OPTIONS), sorted; empty
    when no route has this path. A catch-all route (a `:path` parameter, e.g. the web app's
    pages) counts only for paths no other route has."""
    # FastAPI keeps included routers as such: its own walk sees each route with its prefix.
    matching = [
        (context.path, context.methods)
        for context in iter_route_contexts(routes)
        if context.path
        and context.methods
        and compile_path(context.path)[0].fullmatch(path) is not None
    ]
    specific = [match for match in matching if ":path}" not in match[0]]
    methods: set[str] = set()
    for _, route_methods in specific or matching:
        methods |= route_methods
    if not methods:
        return []
    if "GET" in methods:
        methods.add("HEAD")
    methods.update(_REPORTED_ALWAYS)
    return sorted(methods)


class MethodsMiddleware:
    """OPTIONS and HEAD for every path, whatever its routes declare."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(scope["app"].routes, scope["path"])
        if scope["method"] == "OPTIONS" and methods:
            await _send_empty(send, 204, [(b"allow", ", ".join(methods).encode())])
            return
        if scope["method"] == "HEAD" and "GET" in methods:
            # A copy: the server's own scope still says HEAD, so it sends no body either.
            await self.app({**scope, "method": "GET"}, receive, _without_body(send))
            return
        await self.app(scope, receive, send)


async def _send_empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _without_body(send: Send) -> Send:
    """`send` that passes the headers (Content-Length included, as GET's) but no body bytes."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return send_head
