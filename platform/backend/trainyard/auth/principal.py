"""Who is calling, and what a request may do: the `Principal` and its `Access`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from trainyard.auth.models import DEFAULT_PROJECT_ID
from trainyard.auth.roles import Action, Role, role_allows
from trainyard.core.errors import Forbidden


@dataclass(frozen=True)
class ProjectRole:
    project_id: str
    slug: str
    role: Role


@dataclass(frozen=True)
class Principal:
    """A signed-in user (or the embedded tier's local user), as one request sees them."""

    user_id: str
    # What the audit trail and logs call them (their email or name; never a credential).
    label: str
    platform_admin: bool
    # The projects they may act in, by project id (an API key narrows these to its own).
    projects: Mapping[str, ProjectRole]
    # How they proved it: "local", "oidc", "session" or "api_key:<prefix>".
    credential: str
    client: str = ""
    groups: tuple[str, ...] = field(default=())

    def role_in(self, project_id: str) -> Role | None:
        """Their role in a project; None when they may not even see it. A platform admin
        administers every project (unless an API key narrowed them)."""
        membership = self.projects.get(project_id)
        if self.platform_admin:
            return Role.ADMIN
        return membership.role if membership is not None else None

    def project_by_slug(self, slug: str) -> ProjectRole | None:
        return next((p for p in self.projects.values() if p.slug == slug), None)

    @property
    def default_project_id(self) -> str | None:
        """The project a request acts in when it names none: the default project when they
        are a member, else the first of theirs by slug."""
        if DEFAULT_PROJECT_ID in self.projects:
            return DEFAULT_PROJECT_ID
        ordered = sorted(self.projects.values(), key=lambda p: p.slug)
        return ordered[0].project_id if ordered else None


class InsufficientRole(Forbidden):
    code = "insufficient_role"

    def __init__(self, action: Action, role: Role) -> None:
        super().__init__(f"your role in this project ({role}) may not {action.replace('_', ' ')}")


@dataclass(frozen=True)
class Access:
    """What a route may do for its caller: `action`, on objects the caller can see.

    Collection routes (list, submit, register) act in `project_id`, the project the request
    names (the Trainyard-Project header) or the caller's default, checked before the route
    runs. Object routes find the object first and call `allows(object.project_id)`.
    """

    principal: Principal
    action: Action
    project_id: str | None = None

    @property
    def project(self) -> str:
        """The project a collection route acts in."""
        if self.project_id is None:
            raise RuntimeError("this route was not given a project (use ProjectPermit)")
        return self.project_id

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    def allows(self, project_id: str) -> bool:
        """True when the caller may perform the action on an object of `project_id`; False
        when they cannot see that project at all (answer 404: no existence oracle); raises
        InsufficientRole (403) when they can see it but their role is too weak."""
        role = self.principal.role_in(project_id)
        if role is None:
            return False
        if not role_allows(role, self.action):
            raise InsufficientRole(self.action, role)
        return True
