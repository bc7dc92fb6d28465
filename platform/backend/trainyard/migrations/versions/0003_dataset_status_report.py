"""datasets.status and datasets.report: the result of validating a dataset when it is added

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Rows registered before validation existed were never checked: "pending".
    op.add_column(
        "datasets",
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    )
    op.add_column("datasets", sa.Column("report", _JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("datasets", "report")
    op.drop_column("datasets", "status")
