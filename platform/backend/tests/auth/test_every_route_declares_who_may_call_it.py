"""Every route declares who may call it: a `Permit` (a signed-in user and the action), the
worker's internal token, or a trainer's callback token; or it is on the explicit public list.
A new route without one fails here before it ships."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount

from trainyard.callbacks.router import callback_claims
from trainyard.deps import Permit
from trainyard.internal.router import require_internal_token
from trainyard.main import create_app

from ..conftest import make_settings

# Routes anyone may call: liveness, readiness and metrics (no dependency text), the web app's files
# and pages (they hold no data: the data comes from the API), the OpenAPI document and its
# docs (they describe the API, not its data), the sign-in flow and what the CLI needs to start
# it (auth config).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",  # on the internal port only when the ports are split (core/listeners.py)
    "/{page:path}",
    "/",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/auth/login",
    "/auth/callback",
    "/v1/auth/config",
}
MOUNTS = {"/assets"}  # the web app's static files


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _guard(call: Callable[..., Any]) -> str | None:
    if isinstance(call, Permit):
        return f"permit:{call.action}"
    if call is require_internal_token:
        return "internal token"
    if call is callback_claims:
        return "callback token"
    return None


def _routes() -> list[APIRoute | APIWebSocketRoute | Mount]:
    app = create_app(make_settings(Path("/nonexistent/route-walk"), "127.0.0.1:7233"))
    return [r for r in app.routes if isinstance(r, APIRoute | APIWebSocketRoute | Mount)]


def test_every_route_has_a_guard_or_is_on_the_public_list() -> None:
    unguarded = []
    for route in _routes():
        if isinstance(route, Mount):
            assert route.path in MOUNTS, f"an unexpected mount {route.path}"
            continue
        guards = {g for g in map(_guard, _calls(route.dependant)) if g is not None}
        if not guards and route.path not in PUBLIC:
            unguarded.append(route.path)
        if guards and route.path in PUBLIC:
            raise AssertionError(f"{route.path} is guarded: take it off the public list")
    assert unguarded == []


def test_each_guarded_route_declares_exactly_one_kind_of_guard() -> None:
    for route in _routes():
        if isinstance(route, Mount):
            continue
        kinds = {g.split(":")[0] for g in map(_guard, _calls(route.dependant)) if g}
        assert len(kinds) <= 1, (route.path, kinds)


def test_the_walk_sees_a_route_without_a_guard() -> None:
    """The check itself can fail: a route added with no guard is caught."""
    app = create_app(make_settings(Path("/nonexistent/route-walk"), "127.0.0.1:7233"))

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/v1/forgotten")
    assert not any(_guard(call) for call in _calls(route.dependant))
    assert route.path not in PUBLIC
