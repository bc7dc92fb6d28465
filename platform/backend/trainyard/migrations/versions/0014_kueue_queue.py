"""platform_capacity.queue: who admits trainers (the platform's ledger or Kueue);
jobs.external_queue: where Kueue holds a job, while it does (trainyard/admission/external_queue.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "platform_capacity",
        sa.Column("queue", sa.String(16), nullable=False, server_default="platform"),
    )
    op.add_column("jobs", sa.Column("external_queue", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("external_queue")
    with op.batch_alter_table("platform_capacity") as batch:
        batch.drop_column("queue")
