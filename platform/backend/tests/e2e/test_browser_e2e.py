"""The whole path in a real browser: Debian's Chromium driven by Playwright against the real
embedded platform (the web app served by the API, Temporal, worker, a real tiny training).

Screenshots land in test-artifacts/browser/ (the README's picture of the job page is one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .conftest import REPO_ROOT
from .helpers import wait_until_gone

pytestmark = pytest.mark.xdist_group("e2e")

CHROMIUM = Path("/usr/bin/chromium")
WEB_BUILD = REPO_ROOT / "platform" / "web" / "dist" / "index.html"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
DATASET = "shapes-ui"
TRAINING_S = 240_000  # ms: a tiny CPU training on a busy 2-core machine


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing (/usr/bin/chromium): `make test` installs it "
            "(platform/tools/install-chromium.sh)"
        )
    if not WEB_BUILD.exists():
        pytest.fail(f"the web app is not built ({WEB_BUILD}): run `make web`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def dataset(platform: EmbeddedPlatform, shapes: GeneratedDataset) -> str:
    with httpx.Client(base_url=platform.config.api_url, timeout=30) as client:
        if client.get(f"/v1/datasets/{DATASET}").status_code == 404:
            created = client.post("/v1/datasets", json={"name": DATASET, "uri": shapes.uri})
            assert created.status_code == 201, created.text
    return DATASET


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def ask(page: Page, base_url: str, message: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("chat-input").fill(message)
    page.get_by_test_id("chat-input").press("Enter")


def start_from_chat(page: Page, base_url: str, message: str) -> str:
    """Ask, check the card is ready, press Start; the job id of the page it lands on."""
    ask(page, base_url, message)
    expect(page.get_by_test_id("plan-card")).to_be_visible()
    expect(page.get_by_test_id("plan-start")).to_be_enabled()
    page.get_by_test_id("plan-start").click()
    page.wait_for_url(re.compile(r".*/jobs/job_[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[-1]


def epoch_shown(page: Page) -> int:
    return int(page.get_by_test_id("job-progress").get_attribute("aria-valuenow") or 0)


def test_a_request_in_words_trains_live_to_succeeded_and_a_reload_loses_nothing(
    platform: EmbeddedPlatform, api: httpx.Client, dataset: str, page: Page
) -> None:
    base = platform.config.api_url
    ask(page, base, f"train yolo11n on {dataset} for 6 epochs at 64 with batch 4")

    card = page.get_by_test_id("plan-card")
    expect(card).to_be_visible()
    expect(page.get_by_test_id("chat-reply").last).to_contain_text("Here is the plan")
    expect(page.get_by_test_id("plan-field-model")).to_have_value("yolo11n.yaml")
    expect(page.get_by_test_id("plan-field-epochs")).to_have_value("6")
    expect(card).to_contain_text("valid")
    expect(page.get_by_test_id("plan-estimate")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "plan-card.png")
    jobs_before = api.get("/v1/jobs").json()["total"]

    page.get_by_test_id("plan-start").click()
    page.wait_for_url(re.compile(r".*/jobs/job_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    assert api.get("/v1/jobs").json()["total"] == jobs_before + 1
    expect(page.get_by_test_id("connection-status")).to_have_text("live")
    # A locator, not wait_for_function: the page's Content-Security-Policy forbids the
    # string evaluation that a predicate needs (no 'unsafe-eval').
    expect(page.get_by_test_id("job-progress")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9][0-9]*$"), timeout=TRAINING_S
    )
    assert epoch_shown(page) >= 1
    # Mid-run: the page is rebuilt from the stored events, then follows live ones.
    page.reload()
    expect(page.get_by_test_id("job-state")).to_have_text("SUCCEEDED", timeout=TRAINING_S)

    timeline = page.get_by_test_id("event-timeline")
    events = api.get(f"/v1/jobs/{job_id}/events").json()["items"]
    shown = [
        int(s) for s in timeline.locator("li").evaluate_all("els => els.map(e => e.dataset.seq)")
    ]
    expected = [e["seq"] for e in events if e["type"] not in {"heartbeat", "log"}]
    assert shown == expected  # every timeline event once, in order, none missing
    assert timeline.get_attribute("data-gaps") == "0"
    assert timeline.get_attribute("data-last-seq") == str(events[-1]["seq"])
    assert epoch_shown(page) == 6
    expect(page.get_by_test_id("job-progress")).to_contain_text("epoch 6/6")
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", "6")
    expect(page.get_by_test_id("loss-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("metric-chart")).to_have_attribute("data-points", "6")
    # The heartbeats' system metrics, charted over time (a CPU run: no GPU series, no hint).
    system_heartbeats = [e for e in events if e["type"] == "heartbeat" and "system" in e["data"]]
    expect(page.get_by_test_id("cpu-chart")).to_have_attribute(
        "data-points", str(len(system_heartbeats))
    )
    expect(page.get_by_test_id("cpu-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("throughput-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("gpu-hint")).to_have_count(0)
    link = page.get_by_test_id("artifact-link").first
    expect(link).to_be_visible()
    weights = api.get(link.get_attribute("href") or "")
    assert weights.status_code == 200
    assert len(weights.content) > 100_000
    page.screenshot(path=ARTIFACTS / "job-page.png", full_page=True)


def test_a_running_job_is_cancelled_from_its_page(
    platform: EmbeddedPlatform, api: httpx.Client, dataset: str, page: Page
) -> None:
    job_id = start_from_chat(
        page, platform.config.api_url, f"train yolo11n on {dataset} for 300 epochs at 64"
    )
    expect(page.get_by_test_id("job-state")).to_have_text("RUNNING", timeout=TRAINING_S)
    launched = [
        e for e in api.get(f"/v1/jobs/{job_id}/events").json()["items"]
        if e["type"] == "attempt_launched"
    ]  # fmt: skip

    page.get_by_test_id("job-cancel").click()

    expect(page.get_by_test_id("job-state")).to_have_text("CANCELLED", timeout=60_000)
    expect(page.get_by_test_id("job-cancel")).to_be_disabled()
    assert wait_until_gone(int(launched[-1]["data"]["pid"]))
    page.screenshot(path=ARTIFACTS / "cancelled.png")


def test_what_trainyard_cannot_do_is_answered_in_the_chat_and_starts_nothing(
    platform: EmbeddedPlatform, api: httpx.Client, dataset: str, page: Page
) -> None:
    before = api.get("/v1/jobs").json()["total"]

    ask(page, platform.config.api_url, f"train yolo11n on {dataset} on 10000 GPUs")

    expect(page.get_by_test_id("chat-reply").last).to_contain_text("at most")
    expect(page.get_by_test_id("plan-question").first).to_contain_text("GPUs")
    expect(page.get_by_test_id("plan-start")).to_be_disabled()
    # Editing the card re-checks it: with a sane GPU count it can start.
    page.get_by_test_id("plan-field-gpus").fill("0")
    expect(page.get_by_test_id("plan-question")).to_have_count(0)
    expect(page.get_by_test_id("plan-start")).to_be_enabled()
    assert api.get("/v1/jobs").json()["total"] == before
    page.screenshot(path=ARTIFACTS / "refused.png")


def test_the_pages_fit_a_phone_screen(
    platform: EmbeddedPlatform, api: httpx.Client, dataset: str, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    phone = context.new_page()
    try:
        newest = api.get("/v1/jobs", params={"limit": 1}).json()["items"]
        pages = ["/", "/jobs", "/datasets"] + [f"/jobs/{job['id']}" for job in newest]
        for path in pages:
            phone.goto(f"{platform.config.api_url}{path}")
            phone.wait_for_load_state("networkidle")
            overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        phone.screenshot(path=ARTIFACTS / "phone-job-page.png", full_page=True)
    finally:
        context.close()
