"""The same-origin guard (trainyard.auth.same_origin): each attack a browser page could make on
a platform without sign-in, refused; the platform's own pages and non-browser clients pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from trainyard.auth.same_origin import SameOriginGuard, host_name, normalised_origin
from trainyard.core.settings import BackendSettings

from ..conftest import LiveServer
from ..support import submit

FOREIGN = "https://evil.example"


async def _jobs(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/v1/jobs")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- DNS rebinding -------------------------------------------------------------------------


async def test_a_rebound_host_name_is_refused_on_reads_and_writes(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # evil.example now resolves to 127.0.0.1: the browser sends its own name as the Host.
    read = await api.get("/v1/jobs", headers={"Host": "evil.example"})
    write = await api.post("/v1/jobs", json=job_body, headers={"Host": "evil.example:8000"})

    assert read.status_code == 403
    assert read.json()["code"] == "untrusted_host"
    assert isinstance(read.json()["detail"], str)
    assert write.status_code == 403
    assert await _jobs(api) == []


# --- cross-site state changes --------------------------------------------------------------


async def test_a_cross_site_post_cannot_cancel_a_job(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)

    refused = await api.post(f"/v1/jobs/{job['id']}/cancel", headers={"Origin": FOREIGN})

    assert refused.status_code == 403
    assert refused.json()["code"] == "cross_site_request"
    (after,) = await _jobs(api)
    assert after["state"] == job["state"]


async def test_a_cross_site_post_cannot_register_a_dataset(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    body = {"name": "shapes", "uri": dataset_dir.as_uri(), "format": "yolo"}

    refused = await api.post("/v1/datasets", json=body, headers={"Origin": FOREIGN})

    assert refused.status_code == 403
    assert refused.json()["code"] == "cross_site_request"
    assert (await api.get("/v1/datasets")).json()["items"] == []


async def test_an_origin_of_null_is_foreign(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # Sandboxed iframes, file: pages and some redirects send `Origin: null`.
    refused = await api.post("/v1/jobs", json=job_body, headers={"Origin": "null"})

    assert refused.status_code == 403
    assert await _jobs(api) == []


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_foreign_sec_fetch_site_without_origin_is_refused(
    api: httpx.AsyncClient, job_body: dict[str, Any], site: str
) -> None:
    refused = await api.post("/v1/jobs", json=job_body, headers={"Sec-Fetch-Site": site})

    assert refused.status_code == 403
    assert refused.json()["code"] == "cross_site_request"
    assert await _jobs(api) == []


# --- bodies a page may send across sites without a preflight ---------------------------------


async def test_a_json_body_sent_as_text_plain_is_a_415_and_creates_no_job(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    raw = httpx.Request("POST", "http://x", json=job_body).content

    refused = await api.post(
        "/v1/jobs", content=raw, headers={"Content-Type": "text/plain;charset=UTF-8"}
    )

    assert refused.status_code == 415
    assert refused.json()["code"] == "unsupported_media_type"
    assert "application/json" in refused.json()["detail"]
    assert await _jobs(api) == []


async def test_a_form_encoded_body_is_a_415(api: httpx.AsyncClient) -> None:
    refused = await api.post("/v1/jobs", data={"framework": "ultralytics", "epochs": "3"})

    assert refused.status_code == 415
    assert refused.json()["code"] == "unsupported_media_type"
    assert await _jobs(api) == []


async def test_an_untyped_body_is_a_415(api: httpx.AsyncClient, job_body: dict[str, Any]) -> None:
    # fetch(url, {method: "POST", body: new Blob([json]), mode: "no-cors"}) sends no type, and
    # FastAPI reads an untyped body as JSON.
    raw = httpx.Request("POST", "http://x", json=job_body).content

    refused = await api.post("/v1/jobs", content=raw)

    assert refused.status_code == 415
    assert await _jobs(api) == []


# --- what still passes ---------------------------------------------------------------------


async def test_a_same_origin_browser_request_passes(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    own = {"Origin": "http://trainyard.test", "Sec-Fetch-Site": "same-origin"}
    with_port = {"Origin": "http://trainyard.test:80", "Host": "trainyard.test"}

    created = await api.post("/v1/jobs", json=job_body, headers=own)
    second = await api.post("/v1/jobs", json=job_body, headers=with_port)

    assert created.status_code == 201, created.text
    assert second.status_code == 201, second.text


async def test_a_get_with_a_foreign_origin_still_works(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # A read changes nothing; CORS is not enabled (no Access-Control-Allow-Origin), so the
    # foreign page's browser never hands it the answer.
    job = await submit(api, job_body)

    read = await api.get(f"/v1/jobs/{job['id']}", headers={"Origin": FOREIGN})

    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers


async def test_a_client_that_is_not_a_browser_passes(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # curl, the CLI, the worker and the trainers send neither Origin nor Sec-Fetch-Site.
    assert (await api.post("/v1/jobs", json=job_body)).status_code == 201


# --- WebSocket handshakes ------------------------------------------------------------------


async def test_a_websocket_from_a_foreign_origin_is_refused_and_the_own_origin_accepted(
    live_server: LiveServer, live_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(live_api, job_body)
    url = f"{live_server.ws_url}/v1/jobs/{job['id']}/stream"

    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=Origin(FOREIGN)):
            pass
    async with connect(url, origin=Origin(live_server.http_url)) as ws:
        first = await ws.recv()

    assert refused.value.response.status_code == 403
    assert b"cross_site_request" in refused.value.response.body
    assert json.loads(first)["seq"] == 1  # accepted: the job's stored events replay


# --- the rules on a bare app (no database) -------------------------------------------------


def _guarded(trusted_hosts: frozenset[str], trusted_origins: frozenset[str]) -> SameOriginGuard:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", echo, methods=["GET", "POST"])])
    return SameOriginGuard(app, trusted_hosts=trusted_hosts, trusted_origins=trusted_origins)


def _public_settings(tmp_path: Path) -> BackendSettings:
    return BackendSettings.model_validate(
        {"data_dir": tmp_path, "public_url": "https://trainyard.example.com", "api_port": 8000}
    )


async def test_the_public_url_origin_passes_behind_a_tls_proxy(tmp_path: Path) -> None:
    settings = _public_settings(tmp_path)
    guard = _guarded(settings.trusted_hosts, settings.trusted_origins)
    # The proxy ends TLS: the app sees http, the browser's page is https.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="http://trainyard.example.com"
    ) as client:
        public = await client.post(
            "/", json={}, headers={"Origin": "https://trainyard.example.com"}
        )
        other_port = await client.post(
            "/", json={}, headers={"Origin": "https://trainyard.example.com:8443"}
        )

    assert public.status_code == 200, public.text
    assert other_port.status_code == 403


async def test_a_page_of_the_same_host_under_another_scheme_or_port_is_foreign(
    tmp_path: Path,
) -> None:
    guard = _guarded(frozenset({"localhost"}), frozenset())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="http://localhost:8000"
    ) as client:
        own = await client.post("/", json={}, headers={"Origin": "http://LOCALHOST:8000"})
        other_port = await client.post("/", json={}, headers={"Origin": "http://localhost:3000"})
        https = await client.post("/", json={}, headers={"Origin": "https://localhost:8000"})

    assert own.status_code == 200
    assert other_port.status_code == 403
    assert https.status_code == 403


async def test_host_names_match_without_port_in_any_case_and_ipv6_in_brackets() -> None:
    guard = _guarded(frozenset({"::1", "localhost"}), frozenset())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="http://[::1]:8000"
    ) as client:
        v6 = await client.get("/")
        upper = await client.get("/", headers={"Host": "LocalHost:9"})
        bare_v6 = await client.get("/", headers={"Host": "::1"})  # malformed: no brackets
        suffix = await client.get("/", headers={"Host": "localhost.evil.example"})

    assert (v6.status_code, upper.status_code) == (200, 200)
    assert (bare_v6.status_code, suffix.status_code) == (403, 403)


async def test_a_multipart_upload_needs_no_json_type_but_a_trusted_origin() -> None:
    guard = _guarded(frozenset({"localhost"}), frozenset())
    files = {"file": ("a.zip", b"PK", "application/zip")}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="http://localhost"
    ) as client:
        own = await client.post("/", files=files, headers={"Origin": "http://localhost"})
        foreign = await client.post("/", files=files, headers={"Origin": FOREIGN})

    assert own.status_code == 200
    assert foreign.status_code == 403


async def test_a_request_without_a_host_header_is_refused() -> None:
    guard = _guarded(frozenset({"localhost"}), frozenset())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
    }
    await guard(scope, receive, send)

    assert sent[0]["status"] == 403


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("LOCALHOST:8000", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("trainyard.test", "trainyard.test"),
        ("host:port", None),
        ("[::1", None),
        ("[::1]x", None),
        ("", None),
    ],
)
def test_host_name_of_a_host_header(header: str, name: str | None) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("origin", "normalised"),
    [
        ("http://Trainyard.Test:80", "http://trainyard.test"),
        ("https://trainyard.test:443", "https://trainyard.test"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file://", None),
        ("https://user@evil.example", None),
        ("http://trainyard.test/path", None),
    ],
)
def test_normalised_origin(origin: str, normalised: str | None) -> None:
    assert normalised_origin(origin) == normalised
