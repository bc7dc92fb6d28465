"""Tables of the datasets domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.core.db import Base, PortableJSON, UTCDateTime, utcnow


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The project it belongs to (who may see it), and the user who made it.
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    owner: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    uri: Mapped[str] = mapped_column(String(2048))
    format: Mapped[str] = mapped_column(String(32))
    # pending | valid | invalid, from the validation report below.
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    report: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, default=None)
    # Bytes the platform stored for it (an upload, uncompressed): what counts against the
    # project's storage quota and what deleting it frees. None: registered, stored by its owner.
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
