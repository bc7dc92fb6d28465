"""The built web app is served at `/`; page routes reload into index.html; API paths stay API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

INDEX = '<!doctype html><div id="root"></div><script src="/assets/app-1a2b.js"></script>'


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "app-1a2b.js").write_text("console.log('trainyard')")
    (folder / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not for the web")
    return folder


async def client_for(settings: BackendSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test"
        ) as client,
    ):
        yield client


@pytest.fixture
async def web(settings: BackendSettings, web_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings.model_copy(update={"web_dir": web_dir})):
        yield client


@pytest.mark.parametrize("page", ["/", "/jobs", "/jobs/job_0123abcd", "/chat/c1", "/datasets"])
async def test_every_page_route_gets_the_app_so_a_reload_works(
    web: httpx.AsyncClient, page: str
) -> None:
    response = await web.get(page)

    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"


async def test_assets_and_top_level_files_are_served_as_files(web: httpx.AsyncClient) -> None:
    script = await web.get("/assets/app-1a2b.js")
    icon = await web.get("/favicon.svg")

    assert (script.status_code, script.text) == (200, "console.log('trainyard')")
    assert "javascript" in script.headers["content-type"]
    assert (icon.status_code, icon.text) == (200, "<svg/>")


async def test_api_paths_never_fall_through_to_the_app(web: httpx.AsyncClient) -> None:
    unknown_api = await web.get("/v1/nothing-here")
    missing_asset = await web.get("/assets/gone.js")
    jobs = await web.get("/v1/jobs")

    assert unknown_api.status_code == 404
    assert unknown_api.json()["detail"] == "no route /v1/nothing-here"
    assert missing_asset.status_code == 404
    assert jobs.status_code == 200
    assert "items" in jobs.json()


async def test_files_above_the_build_folder_are_unreachable(web: httpx.AsyncClient) -> None:
    response = await web.get("/..%2Fsecret.txt")

    assert "not for the web" not in response.text


async def test_without_a_build_the_root_says_how_to_build_it(
    settings: BackendSettings, tmp_path: Path
) -> None:
    async for client in client_for(settings.model_copy(update={"web_dir": tmp_path / "none"})):
        response = await client.get("/")

        assert response.status_code == 503
        assert "make web" in response.text
