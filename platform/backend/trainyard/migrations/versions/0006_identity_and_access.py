"""users, projects, memberships, api_keys and audit_events; every job, dataset and conversation
belongs to a project: existing rows move into the default project, whose admins are the
owners they had (the embedded tier's local user)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_WHEN = sa.DateTime(timezone=True)
# As trainyard.auth.models (a migration keeps its own copy: the models may change later).
_DEFAULT_PROJECT = "default"
_LOCAL_ISSUER = "local"
_OWNED = ("jobs", "datasets", "chat_conversations")


def _create_tables() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("platform_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.UniqueConstraint("issuer", "subject", name="uq_users_issuer_subject"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.UniqueConstraint("slug", name="uq_projects_slug"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(64),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("expires_at", _WHEN, nullable=True),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.Column("last_used_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
    )
    for column in ("at", "user_id", "project_id"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])


def _move_rows_into_the_default_project() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    projects = sa.table(
        "projects", sa.column("id"), sa.column("slug"), sa.column("name"), sa.column("created_at")
    )
    op.bulk_insert(
        projects,
        [{"id": _DEFAULT_PROJECT, "slug": "default", "name": "Default", "created_at": now}],
    )
    owners = {"local"}
    for table in _OWNED:
        owners |= {row[0] for row in bind.execute(sa.text(f"SELECT DISTINCT owner FROM {table}"))}
    # Each owner so far was the local user of an embedded install (the only kind there was):
    # they stay who they were (user id = their owner name) and administer the default project.
    users = sa.table(
        "users",
        sa.column("id"),
        sa.column("issuer"),
        sa.column("subject"),
        sa.column("platform_admin"),
        sa.column("created_at"),
    )
    memberships = sa.table(
        "memberships",
        sa.column("project_id"),
        sa.column("user_id"),
        sa.column("role"),
        sa.column("source"),
        sa.column("created_at"),
    )
    op.bulk_insert(
        users,
        [
            {
                "id": owner,
                "issuer": _LOCAL_ISSUER,
                "subject": owner,
                "platform_admin": True,
                "created_at": now,
            }
            for owner in sorted(owners)
        ],
    )
    op.bulk_insert(
        memberships,
        [
            {
                "project_id": _DEFAULT_PROJECT,
                "user_id": owner,
                "role": "admin",
                "source": "direct",
                "created_at": now,
            }
            for owner in sorted(owners)
        ],
    )
    for table in _OWNED:
        op.add_column(table, sa.Column("project_id", sa.String(64), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET project_id = :p").bindparams(p=_DEFAULT_PROJECT))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("project_id", existing_type=sa.String(64), nullable=False)
            batch.create_foreign_key(
                f"fk_{table}_project_id_projects",
                "projects",
                ["project_id"],
                ["id"],
                ondelete="RESTRICT",
            )
            batch.create_index(f"ix_{table}_project_id", ["project_id"])


def _rename_datasets_that_now_share_a_name() -> None:
    """Names were unique per owner and are per project now: of two owners' "shapes", the
    older keeps the name and the newer becomes "shapes-<owner>" (nothing is dropped)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, owner, name FROM datasets ORDER BY created_at, id"))
    seen: set[str] = set()
    for dataset_id, owner, name in rows.all():
        kept = name if name not in seen else f"{name}-{owner}"[:128]
        if kept != name:
            bind.execute(
                sa.text("UPDATE datasets SET name = :name WHERE id = :id"),
                {"name": kept, "id": dataset_id},
            )
        seen.add(kept)


def upgrade() -> None:
    _create_tables()
    _move_rows_into_the_default_project()
    _rename_datasets_that_now_share_a_name()
    # Dataset names are unique within a project (they were within an owner).
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint("uq_datasets_owner_name", type_="unique")
        batch.create_unique_constraint("uq_datasets_project_id_name", ["project_id", "name"])


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint("uq_datasets_project_id_name", type_="unique")
        batch.create_unique_constraint("uq_datasets_owner_name", ["owner", "name"])
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_project_id")
            batch.drop_constraint(f"fk_{table}_project_id_projects", type_="foreignkey")
            batch.drop_column("project_id")
    for table in ("audit_events", "api_keys", "memberships", "projects", "users"):
        op.drop_table(table)
