"""Helpers the backend tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from trainyard.auth.api_keys import make_api_key
from trainyard.auth.models import DEFAULT_PROJECT_ID, Membership, Project, User
from trainyard.auth.roles import Role
from trainyard.runtime import Runtime
from trainyard_testing.credential_leaks import remember_credential

INTERNAL_TOKEN = "test-internal-token"
CALLBACK_SECRET = "test-callback-secret"
INTERNAL_HEADERS = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@asynccontextmanager
async def serving(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `application` with its lifespan running (another API than the `api`
    fixture's: other settings, other storage)."""
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://trainyard.test"
        ) as client,
    ):
        yield client


async def submit(api: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await api.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def events(api: httpx.AsyncClient, job_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/jobs/{job_id}/events", params={"after_seq": after_seq})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# Where the tests' attempts write (their trainers may report files below it only).
OUTPUT_DIR = "/out"


async def start_attempt(
    api: httpx.AsyncClient,
    job_id: str,
    attempt: int = 1,
    output_dir: str = OUTPUT_DIR,
    output_uri: str | None = None,
) -> str:
    """What the worker does before launching a trainer: returns the attempt's callback token."""
    response = await api.post(
        f"/internal/v1/jobs/{job_id}/attempts/{attempt}",
        json={"output_dir": output_dir, "output_uri": output_uri},
        headers=INTERNAL_HEADERS,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["callback_token"]
    remember_credential(token, "callback token")
    return token


async def move(
    api: httpx.AsyncClient, job_id: str, state: str, reason: str | None = None
) -> httpx.Response:
    """A worker transition through the internal API."""
    return await api.post(
        f"/internal/v1/jobs/{job_id}/transition",
        json={"state": state, "reason": reason},
        headers=INTERNAL_HEADERS,
    )


async def callback(
    api: httpx.AsyncClient, job_id: str, kind: str, token: str | None, body: dict[str, Any]
) -> httpx.Response:
    """A trainer callback (heartbeat, event or done)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await api.post(f"/v1/jobs/{job_id}/{kind}", json=body, headers=headers)


def heartbeat(epoch: int, epochs: int = 3, **metrics: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "epochs": epochs,
        "metrics": {k.replace("__", "/"): v for k, v in metrics.items()},
        "elapsed_s": 10.0 * epoch,
        "eta_s": 10.0 * (epochs - epoch),
    }


def checkpoint_saved(epoch: int, path: str | None = None) -> dict[str, Any]:
    """A trainer's `checkpoint_saved` event: its file inside the attempt's output (`path`,
    default `<OUTPUT_DIR>/last.pt`), with the size and SHA-256 a trainer announces."""
    return {
        "type": "checkpoint_saved",
        "message": f"epoch {epoch}",
        "data": {
            "path": path or f"{OUTPUT_DIR}/last.pt",
            "epoch": epoch,
            "size": 1000 + epoch,
            "sha256": f"{epoch % 10}" * 64,
        },
    }


DONE_SUCCEEDED: dict[str, Any] = {
    "status": "succeeded",
    "reason": None,
    "metrics": {"metrics/mAP50(B)": 0.52},
    "artifacts": {"weights": "/out/weights/best.pt", "last": "/out/weights/last.pt"},
}


async def user_with_key(
    app: FastAPI, name: str, roles: dict[str, Role], key_role: Role = Role.ADMIN
) -> dict[str, str]:
    """A user `name` with a role in each project (slug -> role; projects made as needed) and
    the Authorization header of an API key of theirs (as if they had signed in once and made
    one). The key's own role is `key_role`: it never gives more than the user's roles."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        user = User(id=f"usr_{name}", issuer="https://idp.test", subject=name, email=f"{name}@x")
        session.add(user)
        await session.flush()
        for slug, role in roles.items():
            project = (
                await session.execute(select(Project).where(Project.slug == slug))
            ).scalar_one_or_none()
            if project is None:
                project_id = DEFAULT_PROJECT_ID if slug == "default" else f"prj_{slug}"
                project = Project(id=project_id, slug=slug, name=slug)
                session.add(project)
            await session.flush()
            session.add(Membership(project_id=project.id, user_id=user.id, role=role))
        made = make_api_key(user.id, None, key_role, f"{name}'s key", None)
        session.add(made.row)
    remember_credential(made.secret, "API key")
    return {"Authorization": f"Bearer {made.secret}"}


async def key_of_another_project(api: httpx.AsyncClient, slug: str = "elsewhere") -> dict[str, str]:
    """Through the API only (no database access: for a server on another event loop): a new
    project and the Authorization header of a key that acts in it alone."""
    made = await api.post("/v1/projects", json={"slug": slug, "name": slug})
    assert made.status_code == 201, made.text
    key = await api.post(f"/v1/projects/{slug}/api-keys", json={"name": "outsider"})
    assert key.status_code == 201, key.text
    remember_credential(key.json()["key"], "API key")
    return {"Authorization": f"Bearer {key.json()['key']}"}
