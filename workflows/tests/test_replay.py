"""Committed histories of real runs must replay on the current workflow code.

A change to TrainingWorkflow that would break workflows already running (non-determinism)
fails here. Histories are recorded by platform/backend/tools/capture_histories.py.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

import trainyard_workflows
from trainyard_workflows.telemetry.tracing import temporal_interceptors
from trainyard_workflows.training import (
    ADMISSION_PATCH,
    INTERRUPT_PATCH,
    PREEMPTION_PATCH,
    RETRY_PATCH,
    TRACKING_PATCH,
    TrainingWorkflow,
)

HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("*.json"))
}
SCENARIOS = ("succeeded", "validation_failed", "cancelled", "trainer_killed")
# Runs that take the patched branches: attempt 1 crashed and attempt 2 resumed (RETRY_PATCH);
# attempt 1 stopped from outside and attempt 2 resumed (INTERRUPT_PATCH, then RETRY_PATCH).
# A job that waited QUEUED for admission, then ran (ADMISSION_PATCH; the runs above predate it);
# one that gave way to a higher priority, waited and resumed (PREEMPTION_PATCH).
PATCHED_SCENARIOS = ("retried", "interrupted", "queued", "preempted")
# Histories recorded before MLflow tracking was added (`workflow.patched("mlflow-tracking")`)
# keep replaying: workflows started then may still be running somewhere.
EXPECTED_SCENARIOS = {
    *SCENARIOS,
    *PATCHED_SCENARIOS,
    *(f"pre-tracking-{name}" for name in SCENARIOS),
}
# The marker the SDK (sdk-core) records the first time a run takes a `patched` branch.
PATCH_MARKER = "core_patch"


def test_every_scenario_has_a_committed_history() -> None:
    assert set(HISTORIES) >= EXPECTED_SCENARIOS


@pytest.mark.parametrize("scenario", HISTORIES)
async def test_a_recorded_history_replays_on_the_current_workflow(scenario: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{scenario}", HISTORIES[scenario])

    # With the interceptors every worker runs (tracing): they must not change the workflow's
    # commands, whether the history carries a trace context or not.
    replayer = Replayer(workflows=[TrainingWorkflow], interceptors=temporal_interceptors())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None


def test_every_patch_of_the_workflows_is_taken_by_a_committed_history() -> None:
    # A patched branch no history takes is not guarded by the replays above: a new patch
    # needs a capture_histories.py scenario and its recorded history.
    patches = _patch_ids_in_code()
    # The scan finds them.
    assert patches >= {
        TRACKING_PATCH,
        RETRY_PATCH,
        INTERRUPT_PATCH,
        ADMISSION_PATCH,
        PREEMPTION_PATCH,
    }

    marked = {
        patch
        for scenario, text in HISTORIES.items()
        for patch in _patches_marked(WorkflowHistory.from_json(scenario, text))
    }

    assert patches - marked == set()


def _patches_marked(history: WorkflowHistory) -> set[str]:
    converter = DataConverter.default.payload_converter
    marked: set[str] = set()
    for event in history.events:
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == PATCH_MARKER:
            [data] = converter.from_payloads(marker.details["patch-data"].payloads)
            marked.add(data["id"])
    return marked


def _patch_ids_in_code() -> set[str]:
    """Every id passed to `workflow.patched` / `deprecate_patch` in trainyard_workflows."""
    package = Path(trainyard_workflows.__file__).parent
    ids: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        module = None
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"patched", "deprecate_patch"}
            ):
                continue
            [argument] = node.args
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                ids.add(argument.value)
                continue
            # A named constant (the house style): its value, from the module itself.
            assert isinstance(argument, ast.Name), ast.dump(argument)
            if module is None:
                relative = path.relative_to(package.parent).with_suffix("")
                module = importlib.import_module(".".join(relative.parts))
            ids.add(getattr(module, argument.id))
    return ids
