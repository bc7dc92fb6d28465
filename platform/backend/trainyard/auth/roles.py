"""Roles, actions and the one rule that decides which role may do what.

Every route declares the action it performs (`trainyard.deps.Permit`); every check, on a
collection (the project a request names) or on an object (the project it belongs to), calls
`role_allows`. Change who may do what here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A member's role in one project, weakest first."""

    VIEWER = "viewer"  # reads runs, datasets, conversations, artifacts
    MEMBER = "member"  # + submits and cancels runs (own and others'), uploads datasets, chats
    ADMIN = "admin"  # + members, API keys, quotas, settings, the project's audit trail


class Action(StrEnum):
    READ = "read"
    SUBMIT = "submit"  # submit a run, start a chat plan, plan with the chat
    CANCEL = "cancel"
    WRITE_DATASETS = "write_datasets"  # register, upload, delete datasets
    MANAGE = "manage"  # members, API keys, audit trail, project settings


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}

# The weakest role that may perform each action.
WEAKEST_ROLE: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.SUBMIT: Role.MEMBER,
    Action.CANCEL: Role.MEMBER,
    Action.WRITE_DATASETS: Role.MEMBER,
    Action.MANAGE: Role.ADMIN,
}


def role_allows(role: Role, action: Action) -> bool:
    return _RANK[role] >= _RANK[WEAKEST_ROLE[action]]


def weaker(first: Role, second: Role) -> Role:
    """The weaker of two roles (an API key never gives more than its user has)."""
    return first if _RANK[first] <= _RANK[second] else second


def stronger(first: Role, second: Role) -> Role:
    """The stronger of two roles (two groups naming one project give the stronger)."""
    return first if _RANK[first] >= _RANK[second] else second
