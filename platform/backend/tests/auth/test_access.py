"""Authorization on every route: projects scope every object, roles decide what a member may
do, API keys act as their user (never above their own role), and every change is audited.
Runs on both tiers; identities come from API keys (OIDC tokens: test_oidc_sign_in.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from trainyard.auth.roles import Role
from trainyard_testing.credential_leaks import remember_credential

from ..support import submit, user_with_key


def client_of(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=headers
    )


async def test_a_job_of_another_project_is_not_found_on_every_route(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    outsider = await user_with_key(app, "outsider", {"elsewhere": Role.ADMIN})

    async with client_of(app, outsider) as client:
        answers = [
            await client.get(f"/v1/jobs/{job['id']}"),
            await client.get(f"/v1/jobs/{job['id']}/events"),
            await client.get(f"/v1/jobs/{job['id']}/artifacts/weights"),
            await client.post(f"/v1/jobs/{job['id']}/cancel"),
        ]
        listed = await client.get("/v1/jobs")
        named = await client.get("/v1/jobs", headers={"Trainyard-Project": "default"})

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert {a.json()["code"] for a in answers} == {"job_not_found"}
    assert listed.json()["total"] == 0  # their own project is empty
    assert (named.status_code, named.json()["code"]) == (404, "project_not_found")
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["cancel_requested"] is False


async def test_a_viewer_reads_but_may_not_submit_cancel_or_register(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    viewer = await user_with_key(app, "viewer", {"default": Role.VIEWER})

    async with client_of(app, viewer) as client:
        read = await client.get(f"/v1/jobs/{job['id']}")
        listed = await client.get("/v1/jobs")
        cancel = await client.post(f"/v1/jobs/{job['id']}/cancel")
        submitted = await client.post("/v1/jobs", json=job_body)
        registered = await client.post(
            "/v1/datasets", json={"name": "mine", "uri": job_body["dataset"], "format": "yolo"}
        )

    assert (read.status_code, listed.json()["total"]) == (200, 1)
    assert [r.status_code for r in (cancel, submitted, registered)] == [403, 403, 403]
    assert {r.json()["code"] for r in (cancel, submitted, registered)} == {"insufficient_role"}
    assert (await api.get("/v1/jobs")).json()["total"] == 1


async def test_a_member_cancels_anothers_run_in_their_project(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    member = await user_with_key(app, "member", {"default": Role.MEMBER})

    async with client_of(app, member) as client:
        cancel = await client.post(f"/v1/jobs/{job['id']}/cancel")
        mine = await client.post("/v1/jobs", json=job_body)

    assert cancel.status_code == 202
    assert mine.status_code == 201
    assert (mine.json()["owner"], mine.json()["project_id"]) == ("usr_member", "default")


async def test_an_api_key_never_gives_more_than_its_users_role(
    app: FastAPI, job_body: dict[str, Any]
) -> None:
    weak_key = await user_with_key(
        app, "admin-with-viewer-key", {"default": Role.ADMIN}, Role.VIEWER
    )

    async with client_of(app, weak_key) as client:
        submitted = await client.post("/v1/jobs", json=job_body)
        listed = await client.get("/v1/jobs")

    assert (submitted.status_code, listed.status_code) == (403, 200)


@pytest.mark.parametrize("field", ["owner", "project_id", "state", "priority", "attempt"])
async def test_fields_the_platform_decides_are_refused_in_a_submission(
    api: httpx.AsyncClient, job_body: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/jobs", json={**job_body, field: "x"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    assert (await api.get("/v1/jobs")).json()["total"] == 0


@pytest.mark.parametrize(
    "authorization",
    ["Bearer tyk_00000000_wrong", "Bearer tyk_", "Bearer tyk_abc", "Bearer eyJhbGciOi.x.y"],
)
async def test_a_bad_credential_is_a_401_that_changes_nothing(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any], authorization: str
) -> None:
    async with client_of(app, {"Authorization": authorization}) as client:
        response = await client.post("/v1/jobs", json=job_body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert authorization.split()[1] not in response.text
    assert (await api.get("/v1/jobs")).json()["total"] == 0


async def test_an_api_key_is_shown_once_works_and_stops_when_revoked(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    made = await api.post(
        "/v1/projects/default/api-keys", json={"name": "ci", "role": "viewer", "expires_in_days": 7}
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    remember_credential(key, "API key")
    assert key.startswith(f"tyk_{made.json()['prefix']}_")

    listed = await api.get("/v1/projects/default/api-keys")
    assert key not in listed.text
    assert [k["name"] for k in listed.json()["items"]] == ["ci"]

    async with client_of(app, {"Authorization": f"Bearer {key}"}) as client:
        works = await client.get("/v1/jobs")
        me = await client.get("/v1/me")
        revoked = await api.delete(f"/v1/projects/default/api-keys/{made.json()['id']}")
        after = await client.get("/v1/jobs")

    assert works.status_code == 200
    assert me.json()["credential"] == f"api_key:tyk_{made.json()['prefix']}"
    assert [p["role"] for p in me.json()["projects"]] == ["viewer"]
    assert revoked.json()["revoked_at"] is not None
    assert (after.status_code, after.json()["code"]) == (401, "invalid_api_key")
    used = (await api.get("/v1/projects/default/api-keys")).json()["items"][0]
    assert used["last_used_at"] is not None


async def test_an_expired_api_key_is_refused(app: FastAPI, api: httpx.AsyncClient) -> None:
    made = (await api.post("/v1/me/api-keys", json={"name": "old"})).json()
    remember_credential(made["key"], "API key")
    runtime_db = app.state.runtime.db
    from datetime import UTC, datetime, timedelta

    from trainyard.auth.models import ApiKey

    async with runtime_db.session() as session:
        row = await session.get(ApiKey, made["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)

    async with client_of(app, {"Authorization": f"Bearer {made['key']}"}) as client:
        response = await client.get("/v1/jobs")

    assert (response.status_code, response.json()["code"]) == (401, "invalid_api_key")
    assert "expired" in response.json()["detail"]


async def test_members_are_managed_by_project_admins_only(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    await user_with_key(app, "newcomer", {})

    async with client_of(app, member) as client:
        refused = await client.put(
            "/v1/projects/default/members", json={"user_id": "usr_newcomer", "role": "admin"}
        )
        seen = await client.get("/v1/projects/default/members")
    added = await api.put(
        "/v1/projects/default/members", json={"email": "newcomer@x", "role": "viewer"}
    )

    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_role")
    assert "usr_newcomer" not in seen.text
    assert (added.status_code, added.json()["role"]) == (200, "viewer")
    members = (await api.get("/v1/projects/default/members")).json()["items"]
    assert {m["user_id"]: m["role"] for m in members}["usr_newcomer"] == "viewer"


async def test_the_audit_trail_records_who_did_what_for_project_admins(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    async with client_of(app, member) as client:
        job = (await client.post("/v1/jobs", json=job_body)).json()
        await client.post(f"/v1/jobs/{job['id']}/cancel")
        refused = await client.get("/v1/projects/default/audit")
    async with client_of(app, {"Authorization": "Bearer tyk_deadbeef_nope"}) as client:
        await client.get("/v1/jobs")

    trail = (await api.get("/v1/projects/default/audit")).json()["items"]
    everything = (await api.get("/v1/audit")).json()["items"]

    assert refused.status_code == 403
    assert [(e["action"], e["user_id"], e["target"]) for e in trail[:2]] == [
        ("job.cancel", "usr_member", job["id"]),
        ("job.submit", "usr_member", job["id"]),
    ]
    assert trail[0]["credential"].startswith("api_key:tyk_")
    [failure] = [e for e in everything if e["action"] == "sign_in.fail"]
    assert failure["user_id"] is None
    assert "nope" not in str(failure)


async def test_only_platform_admins_make_projects_and_read_the_whole_trail(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await user_with_key(app, "project-admin", {"default": Role.ADMIN})
    async with client_of(app, admin) as client:
        made = await client.post("/v1/projects", json={"slug": "team-b", "name": "Team B"})
        trail = await client.get("/v1/audit")

    created = await api.post("/v1/projects", json={"slug": "team-b", "name": "Team B"})
    again = await api.post("/v1/projects", json={"slug": "team-b", "name": "Team B"})

    assert [made.status_code, trail.status_code] == [403, 403]
    assert (created.status_code, created.json()["role"]) == (201, "admin")
    assert again.status_code == 409
    slugs = [p["slug"] for p in (await api.get("/v1/projects")).json()["items"]]
    assert slugs == ["default", "team-b"]


async def test_collections_act_in_the_project_the_header_names(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    both = await user_with_key(app, "both", {"team-a": Role.MEMBER, "team-b": Role.VIEWER})
    async with client_of(app, both) as client:
        in_a = await client.post("/v1/jobs", json=job_body, headers={"Trainyard-Project": "team-a"})
        in_b = await client.post("/v1/jobs", json=job_body, headers={"Trainyard-Project": "team-b"})
        listed_b = await client.get("/v1/jobs", headers={"Trainyard-Project": "team-b"})
        read_a = await client.get(f"/v1/jobs/{in_a.json()['id']}")
        me = (await client.get("/v1/me")).json()

    assert (in_a.status_code, in_a.json()["project_id"]) == (201, "prj_team-a")
    assert in_b.status_code == 403
    assert listed_b.json()["total"] == 0
    assert read_a.status_code == 200  # an object is found in any project of theirs
    assert me["default_project"] == "team-a"
    assert {p["slug"]: p["role"] for p in me["projects"]} == {
        "team-a": "member",
        "team-b": "viewer",
    }
