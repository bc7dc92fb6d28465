"""Every answer tells the browser to treat it safely: no sniffing, no referrer, no framing,
HSTS over HTTPS; the web app's pages carry a Content-Security-Policy that loads only this
origin's scripts (issue 20, item 6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

from .support import submit
from .test_web_static import client_for, web_dir  # noqa: F401  (the web_dir fixture)


@pytest.fixture
async def web(settings: BackendSettings, web_dir: Path) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    async for client in client_for(settings.model_copy(update={"web_dir": web_dir})):
        yield client


def _safe(response: httpx.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_api_answers_and_errors_are_never_sniffed_framed_or_referred(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    answers = [
        await api.get(f"/v1/jobs/{job['id']}"),
        await api.get("/v1/jobs/job_missing"),
        await api.post("/v1/jobs", json={}),
        await api.get("/healthz"),
    ]

    for response in answers:
        _safe(response)
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP, no public https


async def test_the_web_apps_pages_load_only_this_origins_scripts(web: httpx.AsyncClient) -> None:
    page = await web.get("/jobs")
    asset = await web.get("/assets/app-1a2b.js")
    docs = await web.get("/docs")

    _safe(page)
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self'" in policy
    _safe(asset)
    # Swagger UI loads its scripts from a CDN: it is the API's documentation, not an app page.
    assert docs.status_code == 200
    assert "Content-Security-Policy" not in docs.headers


async def test_hsts_when_served_over_https_or_behind_an_https_public_url(
    settings: BackendSettings,
) -> None:
    behind_proxy = create_app(settings.model_copy(update={"public_url": "https://trainyard.test"}))
    plain = create_app(settings)
    async with (
        behind_proxy.router.lifespan_context(behind_proxy),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=behind_proxy), base_url="http://trainyard.test"
        ) as client,
    ):
        proxied = await client.get("/healthz")
    async with (
        plain.router.lifespan_context(plain),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=plain), base_url="https://trainyard.test"
        ) as client,
    ):
        direct = await client.get("/healthz")

    for response in (proxied, direct):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
