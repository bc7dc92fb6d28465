"""Named priority levels, defined once: what requests name, what `jobs.priority` stores.

Steps of 100 leave room for ageing (the ledger adds 1 per `ageing_s` waited) and for levels
in between later. "normal" is 0, the column's default since migration 0011, so jobs stored
before levels existed read as normal without rewriting a row.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator

PriorityName = Literal["low", "normal", "high", "urgent"]
PRIORITY_NAMES: tuple[PriorityName, ...] = get_args(PriorityName)
DEFAULT_PRIORITY: PriorityName = "normal"
# The most a project member may ask for unless the project says otherwise (projects.max_priority).
DEFAULT_MAX_PRIORITY: PriorityName = "high"
# What a project admin (or a platform admin) may ask for.
ADMIN_MAX_PRIORITY: PriorityName = "urgent"

PRIORITY_VALUES: dict[PriorityName, int] = {
    "low": -100,
    "normal": 0,
    "high": 100,
    "urgent": 200,
}


def priority_value(name: PriorityName) -> int:
    return PRIORITY_VALUES[name]


def priority_name(value: int) -> PriorityName:
    """The level a stored value is at: the highest level not above it."""
    below = [name for name in PRIORITY_NAMES if PRIORITY_VALUES[name] <= value]
    return below[-1] if below else PRIORITY_NAMES[0]


def above(name: PriorityName, cap: PriorityName) -> bool:
    return PRIORITY_VALUES[name] > PRIORITY_VALUES[cap]


def _named(value: Any) -> Any:
    return priority_name(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A level's name read from a stored number or a name (JobRead.priority).
PriorityLevel = Annotated[PriorityName, BeforeValidator(_named)]
