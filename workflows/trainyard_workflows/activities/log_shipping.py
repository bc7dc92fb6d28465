"""What the watch has shipped of a trainer's log, and which lines of a new tail are new.

The watch's heartbeats carry what was shipped (`LogShipping.checkpoint`: a short digest per
line of the last tail, about a kilobyte), and Temporal hands the last of them to the watch a
restarted worker runs again (`LogShipping.resume`). So the log tail goes on from where it was
after a worker restart: the lines written meanwhile are shipped, those already shipped are not
shipped twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

# The heartbeat detail's key (the watch's heartbeats may carry other details one day).
CHECKPOINT_KEY = "log_shipped"


def new_lines(shipped: list[str], tail: list[str]) -> list[str]:
    """The lines of `tail` that come after what was shipped: `tail` may start inside the
    shipped lines (the overlap is the longest end of `shipped` that begins `tail`)."""
    for overlap in range(min(len(shipped), len(tail)), 0, -1):
        if shipped[-overlap:] == tail[:overlap]:
            return tail[overlap:]
    return tail


def digest(line: str) -> str:
    """A line's short digest: enough to find the overlap of two tails, small to heartbeat."""
    return hashlib.blake2b(line.encode(errors="replace"), digest_size=8).hexdigest()


@dataclass
class LogShipping:
    """The digests of the lines shipped last time (the tail they were read from) and when."""

    shipped: list[str] = field(default_factory=list)
    last_at: float = 0.0

    def fresh(self, tail: list[str]) -> list[str]:
        """The lines of `tail` not shipped yet; remembers `tail` as shipped."""
        digests = [digest(line) for line in tail]
        count = len(new_lines(self.shipped, digests))
        if tail:
            self.shipped = digests
        return tail[len(tail) - count :]

    def follow(self) -> None:
        """Make every `heartbeat` of the calling task (the watch's) carry this checkpoint."""
        _FOLLOWED.set(self)

    def checkpoint(self) -> dict[str, Any]:
        """A heartbeat detail holding what was shipped."""
        return {CHECKPOINT_KEY: list(self.shipped)}

    @classmethod
    def resume(cls, details: Sequence[Any], last_at: float) -> LogShipping:
        """From the details of the last heartbeat of an earlier run of the watch (none: a first
        run, or a worker that never shipped)."""
        for detail in details:
            if isinstance(detail, dict) and isinstance(detail.get(CHECKPOINT_KEY), list):
                shipped = [str(item) for item in detail[CHECKPOINT_KEY]]
                return cls(shipped=shipped, last_at=last_at)
        return cls(last_at=last_at)


# The shipping the watch running in this task follows: each of its heartbeats carries it, as a
# heartbeat without details would replace the last details with none.
_FOLLOWED: ContextVar[LogShipping | None] = ContextVar("log_shipping", default=None)


def heartbeat() -> None:
    """`activity.heartbeat`, with the followed log shipping's checkpoint if there is one."""
    logs = _FOLLOWED.get()
    activity.heartbeat(*([logs.checkpoint()] if logs is not None else []))
