"""What the watch has shipped of a trainer's log, and which lines of a new tail are new."""

from __future__ import annotations

from dataclasses import dataclass, field


def new_lines(shipped: list[str], tail: list[str]) -> list[str]:
    """The lines of `tail` that come after what was shipped: `tail` may start inside the
    shipped lines (the overlap is the longest end of `shipped` that begins `tail`)."""
    for overlap in range(min(len(shipped), len(tail)), 0, -1):
        if shipped[-overlap:] == tail[:overlap]:
            return tail[overlap:]
    return tail


@dataclass
class LogShipping:
    """The lines shipped last time (the tail they were read from) and when."""

    shipped: list[str] = field(default_factory=list)
    last_at: float = 0.0
