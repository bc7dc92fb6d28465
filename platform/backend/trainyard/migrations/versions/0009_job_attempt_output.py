"""jobs.attempt_output: the current attempt's output folder and storage prefix, the only
places its trainer may report artifacts and checkpoints in

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("attempt_output", _JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "attempt_output")
