"""FastAPI dependencies, named once and used as annotations in every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from trainyard.core.db import Database
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard.runtime import runtime_of
from trainyard_workflows.storage import ObjectStore, StorageSettings


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


def current_owner(settings: Annotated[BackendSettings, Depends(get_settings)]) -> str:
    # Single-tenant until authentication lands: every record still carries its owner so
    # adding users later is a change here, not a data migration.
    return settings.owner


# scope="function": the unit of work commits when the handler returns, BEFORE the response
# is sent, so a client that POSTs and then GETs at once always sees its write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For a service that needs more than one unit of work (a call to Temporal between two).
DatabaseDep = Annotated[Database, Depends(get_database)]
Workflows = Annotated[WorkflowStarter, Depends(get_workflows)]
Settings = Annotated[BackendSettings, Depends(get_settings)]
Temporal = Annotated[TemporalGateway, Depends(get_temporal)]
CurrentOwner = Annotated[str, Depends(current_owner)]
Storage = Annotated[StorageSettings, Depends(get_storage_settings)]
Store = Annotated[ObjectStore, Depends(get_object_store)]
