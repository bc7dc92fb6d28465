"""Identity and roles in the web app, in a real browser against the embedded platform (auth
mode local: the local user, a platform admin, with no sign-in): the user menu, the project
switcher, the header every call carries, API keys shown once, the members page.

Also: the web app's copy of the role table (platform/web/src/auth/roles.json, which hides
the controls a role may not use) matches the backend's rule (trainyard/auth/roles.py), and its
copy of what a new project may be called (platform/web/src/projects/rules.json) the backend's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from trainyard.auth.projects import SLUG_PATTERN
from trainyard.auth.roles import WEAKEST_ROLE, Role
from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.projects.schemas import ProjectCreate

from .conftest import REPO_ROOT
from .test_browser_e2e import ARTIFACTS, browser  # noqa: F401 (a fixture)

pytestmark = pytest.mark.xdist_group("e2e")

ROLE_TABLE = REPO_ROOT / "platform" / "web" / "src" / "auth" / "roles.json"
PROJECT_RULES = REPO_ROOT / "platform" / "web" / "src" / "projects" / "rules.json"


def test_the_web_apps_role_table_is_the_backends() -> None:
    table = json.loads(ROLE_TABLE.read_text())
    assert table["roles"] == [role.value for role in Role]  # weakest first, both sides
    assert table["weakest_role"] == {a.value: r.value for a, r in WEAKEST_ROLE.items()}


def test_the_web_apps_project_rules_are_the_backends() -> None:
    rules = json.loads(PROJECT_RULES.read_text())
    name = ProjectCreate.model_fields["name"]
    assert rules["slug_pattern"] == SLUG_PATTERN
    assert rules["name_max_length"] == next(
        m.max_length for m in name.metadata if getattr(m, "max_length", None) is not None
    )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811 (the imported browser fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def create_project_key(page: Page, api: httpx.Client, name: str) -> str:
    """Create a viewer key of the default project on the API keys page; its secret."""
    keys = page.get_by_test_id("project-keys")
    keys.get_by_test_id("key-name").fill(name)
    keys.get_by_test_id("key-role").select_option("viewer")
    keys.get_by_role("button", name="Create key").click()
    shown = keys.get_by_test_id("new-key")
    expect(shown).to_contain_text("shown this once")
    secret = keys.get_by_test_id("new-key-value").inner_text()
    assert secret.startswith("tyk_")
    keys.get_by_test_id("new-key-copy").click()
    expect(keys.get_by_test_id("new-key-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    listed = keys.locator("[data-testid=key-row]", has_text=name)
    expect(listed).to_have_attribute("data-state", "active")
    project_keys = api.get("/v1/projects/default/api-keys").json()["items"]
    made = [k for k in project_keys if k["name"] == name]
    assert len(made) == 1
    assert secret.startswith(f"tyk_{made[0]['prefix']}_")
    assert made[0]["role"] == "viewer"
    page.screenshot(path=ARTIFACTS / "api-key-created.png")
    return secret


def test_the_local_user_sees_their_menu_project_members_and_a_new_key_once(
    platform: EmbeddedPlatform, api: httpx.Client, page: Page
) -> None:
    base = platform.config.api_url
    me = api.get("/v1/me").json()
    projects_sent: list[str | None] = []

    def record(request: Request) -> None:
        if "/v1/" in request.url and "/v1/me" not in request.url:
            projects_sent.append(request.headers.get("trainyard-project"))

    page.on("request", record)
    page.goto(f"{base}/members")

    # The user menu: who, how (local mode), and no sign-out (nobody signed in).
    page.get_by_test_id("user-menu").click()
    # The local user may have no name (its id is its name then).
    expect(page.get_by_test_id("user-name")).to_have_text(me["user"]["name"] or me["user"]["id"])
    expect(page.get_by_test_id("user-credential")).to_contain_text("local mode")
    expect(page.get_by_test_id("user-menu-panel")).to_contain_text("platform admin")
    expect(page.get_by_test_id("sign-out")).to_have_count(0)

    # The project switcher lists "default" with the role, chosen.
    switcher = page.get_by_test_id("project-switcher")
    expect(switcher).to_have_value("default")
    expect(switcher.locator("option[value=default]")).to_contain_text("(admin)")

    # The members page: the local user, an admin, with the admin's controls.
    row = page.locator(f"[data-testid=member-row][data-user-id='{me['user']['id']}']")
    expect(row).to_contain_text("(you)")
    expect(row.get_by_test_id("member-row-role-select")).to_have_value("admin")
    expect(page.get_by_test_id("member-add")).to_be_visible()

    # A project key: shown once with its warning and a copy button, then only listed.
    page.get_by_role("link", name="API keys").click()
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    secret = create_project_key(page, api, name)

    # Once: after a reload the key is listed, its secret nowhere on the page.
    page.reload()
    listed = page.get_by_test_id("project-keys").locator("[data-testid=key-row]", has_text=name)
    expect(listed).to_be_visible()
    assert secret not in page.content()
    listed.get_by_test_id("key-revoke").click()
    expect(listed).to_have_attribute("data-state", "revoked")

    # Every collection call named the chosen project.
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_test_id("jobs-filter-state")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert "default" in projects_sent
    assert set(projects_sent) == {"default"}, projects_sent
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "audit.png")


def test_a_platform_admin_creates_a_project_and_acts_in_it(
    platform: EmbeddedPlatform, api: httpx.Client, page: Page
) -> None:
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    page.goto(f"{platform.config.api_url}/jobs")
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("new-project-link").click()
    form = page.get_by_test_id("new-project-form")

    # The slug follows the name until typed; a bad one is refused before any request.
    form.get_by_test_id("new-project-name").fill(f"E2E {slug[4:]}")
    expect(form.get_by_test_id("new-project-slug")).to_have_value(slug)
    form.get_by_test_id("new-project-slug").fill("Not A Slug")
    expect(form.get_by_test_id("new-project-slug-error")).to_be_visible()
    form.get_by_test_id("new-project-slug").fill("default")
    form.get_by_test_id("new-project-create").click()
    expect(page.get_by_test_id("new-project-error")).to_contain_text('"default" exists already')

    form.get_by_test_id("new-project-slug").fill(slug)
    form.get_by_test_id("new-project-create").click()

    # Made, administered by its creator, and chosen: the switcher and the members page say so.
    expect(page).to_have_url(f"{platform.config.api_url}/members")
    expect(page.get_by_test_id("project-switcher")).to_have_value(slug)
    expect(page.get_by_role("heading", name=f"Members of E2E {slug[4:]}")).to_be_visible()
    made = [p for p in api.get("/v1/projects").json()["items"] if p["slug"] == slug]
    assert [(p["name"], p["role"]) for p in made] == [(f"E2E {slug[4:]}", "admin")]


def test_the_identity_pages_fit_a_phone_screen(
    platform: EmbeddedPlatform,
    browser: Browser,  # noqa: F811 (the imported fixture)
) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    phone = context.new_page()
    try:
        for path in ["/members", "/api-keys", "/audit"]:
            phone.goto(f"{platform.config.api_url}{path}")
            phone.wait_for_load_state("networkidle")
            overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
            phone.screenshot(path=ARTIFACTS / f"phone{path.replace('/', '-')}.png", full_page=True)
    finally:
        context.close()
