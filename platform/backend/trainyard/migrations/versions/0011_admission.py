"""Admission (issue 22): jobs.priority and jobs.admitted_at, the projects' quotas, and the
capacity the workers report (platform_capacity)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
    # Jobs stored before admission existed and already past validation hold what they run on.
    op.execute("UPDATE jobs SET admitted_at = updated_at WHERE state IN ('STARTING', 'RUNNING')")
    op.add_column("projects", sa.Column("quota_gpus", sa.Integer(), nullable=True))
    op.add_column("projects", sa.Column("quota_runs", sa.Integer(), nullable=True))
    op.add_column("projects", sa.Column("gpu_hours_per_month", sa.Float(), nullable=True))
    op.create_table(
        "platform_capacity",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("largest_node_gpus", sa.Integer(), nullable=False),
        sa.Column("cpu_slots", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("platform_capacity")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("gpu_hours_per_month")
        batch.drop_column("quota_runs")
        batch.drop_column("quota_gpus")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("admitted_at")
        batch.drop_column("priority")
