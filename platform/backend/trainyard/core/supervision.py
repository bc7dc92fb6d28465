"""The embedded tier's supervision state: what `trainyard up` (cli/supervisor.py) writes about
the processes it keeps running, and what the API's /readyz shows of it.

One JSON file in the data folder, rewritten whole (write, then rename) on every change, so a
reader never sees half of it. Only the embedded tier has one: the API reads it when
TRAINYARD_SUPERVISION_STATE names it (`trainyard up` sets that), production has its own
supervisor (Kubernetes, systemd) and leaves it unset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

STATE_FILE = "supervision.json"

ComponentState = Literal["running", "restarting", "stopping", "stopped"]


class ComponentStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid: int | None
    state: ComponentState
    restarts: int = 0
    # How the last run ended ("exit code 1", "killed by SIGKILL"), and when it was restarted
    # (ISO 8601, UTC); None until it first ended.
    last_exit: str | None = None
    last_restart_at: str | None = None


class SupervisionState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supervisor_pid: int
    components: dict[str, ComponentStatus]


def write_state(path: Path, state: SupervisionState) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(state.model_dump_json(indent=2))
    os.replace(scratch, path)


def readiness_section(path: Path | None) -> dict[str, object]:
    """What /readyz adds about supervision: each component's state and restarts, or why the
    state cannot be read; nothing without a supervisor. Informational: a component being
    restarted does not make the API itself unready."""
    if path is None:
        return {}
    state = read_state(path)
    if isinstance(state, str):
        return {"supervision": state}
    components = {
        name: status.model_dump(exclude={"pid"}) for name, status in state.components.items()
    }
    return {"supervision": components}


def read_state(path: Path) -> SupervisionState | str:
    """The state in `path`, or why it cannot be read (for /readyz, which must still answer)."""
    try:
        return SupervisionState.model_validate_json(path.read_text())
    except (OSError, ValidationError) as error:
        return f"unreadable: {type(error).__name__}: {error}"[:500]
