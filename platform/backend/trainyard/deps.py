"""FastAPI dependencies, named once and used as annotations in every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from trainyard.auth.principal import Access, Principal
from trainyard.auth.projects import PROJECT_HEADER, SLUG_PATTERN, ProjectNotFound, named_project
from trainyard.auth.roles import Action
from trainyard.core.db import Database
from trainyard.core.rate_limits import LimitedRoute
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard.runtime import runtime_of
from trainyard_workflows.storage import ObjectStore, StorageSettings
from trainyard_workflows.telemetry.logs import bind_caller


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with runtime_of(connection).db.session() as session:
        yield session


def get_database(connection: HTTPConnection) -> Database:
    return runtime_of(connection).db


def get_workflows(connection: HTTPConnection) -> WorkflowStarter:
    return runtime_of(connection).workflows


def get_settings(connection: HTTPConnection) -> BackendSettings:
    return runtime_of(connection).settings


def get_temporal(connection: HTTPConnection) -> TemporalGateway:
    return runtime_of(connection).temporal


def get_storage_settings(connection: HTTPConnection) -> StorageSettings:
    settings: StorageSettings = connection.app.state.storage_settings
    return settings


def get_object_store(connection: HTTPConnection) -> ObjectStore:
    store: ObjectStore = connection.app.state.object_store
    return store


async def current_principal(connection: HTTPConnection) -> Principal:
    """Who is calling (401 when nobody signed in and sign-in is required)."""
    principal = connection.scope.get(_PRINCIPAL_KEY)
    if principal is None:
        principal = await runtime_of(connection).authenticator.principal(connection)
        connection.scope[_PRINCIPAL_KEY] = principal
        bind_caller(principal.user_id)  # the request's log lines name who asked
    assert isinstance(principal, Principal)
    return principal


_PRINCIPAL_KEY = "trainyard.principal"


class Permit:
    """The dependency every public route declares: the action it performs.

    `Permit(action)` for a route on one object (its service checks the object's project with
    `Access.allows`); `Permit(action, in_project=True)` for a route on a project's collection
    (list, submit, register): the project is the `Trainyard-Project` header's (a slug) or the
    caller's default, and the caller's role there is checked before the route runs.
    """

    def __init__(self, action: Action, *, in_project: bool = False) -> None:
        self.action = action
        self.in_project = in_project

    async def __call__(
        self,
        connection: HTTPConnection,
        principal: Annotated[Principal, Depends(current_principal)],
        project: Annotated[
            str | None,
            Header(
                alias=PROJECT_HEADER,
                pattern=SLUG_PATTERN,
                description="The project (slug) to act in; default: your default project.",
            ),
        ] = None,
    ) -> Access:
        if not self.in_project:
            return Access(principal, self.action)
        project_id = await named_project(runtime_of(connection).db, principal, project)
        access = Access(principal, self.action, project_id)
        if not access.allows(project_id):
            raise ProjectNotFound(project or project_id)
        bind_caller(principal.user_id, project_id)
        return access


class RateLimited:
    """The dependency of a route that starts costly work (a run, a chat turn, an upload):
    `dependencies=[Depends(RateLimited("submit"))]`. Its requests are counted per caller (the
    user, and the API key when one is used) and per client address; over either limit is a
    429 with Retry-After (core/rate_limits.py)."""

    def __init__(self, route: LimitedRoute) -> None:
        self.route: LimitedRoute = route

    async def __call__(
        self,
        connection: HTTPConnection,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> None:
        caller = f"user:{principal.user_id}"
        if principal.credential.startswith("api_key:"):
            caller += f"/{principal.credential}"  # the key's prefix, never the key
        await runtime_of(connection).rate_limiter.hit(self.route, caller, principal.client)


# scope="function": the unit of work commits when the handler returns, BEFORE the response
# is sent, so a client that POSTs and then GETs at once always sees its write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For a service that needs more than one unit of work (a call to Temporal between two).
DatabaseDep = Annotated[Database, Depends(get_database)]
Workflows = Annotated[WorkflowStarter, Depends(get_workflows)]
Settings = Annotated[BackendSettings, Depends(get_settings)]
Temporal = Annotated[TemporalGateway, Depends(get_temporal)]
# The permissions of public routes, one per action (see trainyard.auth.roles).
CanRead = Annotated[Access, Depends(Permit(Action.READ))]
CanCancel = Annotated[Access, Depends(Permit(Action.CANCEL))]
CanSubmit = Annotated[Access, Depends(Permit(Action.SUBMIT))]
CanManage = Annotated[Access, Depends(Permit(Action.MANAGE))]
ProjectRead = Annotated[Access, Depends(Permit(Action.READ, in_project=True))]
ProjectSubmit = Annotated[Access, Depends(Permit(Action.SUBMIT, in_project=True))]
ProjectWriteDatasets = Annotated[Access, Depends(Permit(Action.WRITE_DATASETS, in_project=True))]
Storage = Annotated[StorageSettings, Depends(get_storage_settings)]
Store = Annotated[ObjectStore, Depends(get_object_store)]
