"""The capacity the workers last reported (one row per pool; `default` for now)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.core.db import Base, UTCDateTime, utcnow


class PlatformCapacity(Base):
    __tablename__ = "platform_capacity"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpus: Mapped[int] = mapped_column(Integer)
    largest_node_gpus: Mapped[int] = mapped_column(Integer)
    cpu_slots: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(16), default="platform", server_default="platform")
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
