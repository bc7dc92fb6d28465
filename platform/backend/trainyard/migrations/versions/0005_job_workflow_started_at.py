"""jobs.workflow_started_at: when the job's workflow was started (null: not yet), so a job
committed without one (Temporal down, or the API stopped between the commit and the start)
is started by the sweep

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("workflow_started_at", sa.DateTime(timezone=True)))
    # Jobs stored before this column had their workflow started within their submission.
    op.execute("UPDATE jobs SET workflow_started_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("workflow_started_at")
