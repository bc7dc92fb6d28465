"""Committed histories of real runs must replay on the current workflow code.

A change to TrainingWorkflow that would break workflows already running (non-determinism)
fails here. Histories are recorded by platform/backend/tools/capture_histories.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from trainyard_workflows.training import TrainingWorkflow

HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("*.json"))
}
SCENARIOS = ("succeeded", "validation_failed", "cancelled", "trainer_killed")
# Histories recorded before MLflow tracking was added (`workflow.patched("mlflow-tracking")`)
# keep replaying: workflows started then may still be running somewhere.
EXPECTED_SCENARIOS = {*SCENARIOS, *(f"pre-tracking-{name}" for name in SCENARIOS)}


def test_every_scenario_has_a_committed_history() -> None:
    assert set(HISTORIES) >= EXPECTED_SCENARIOS


@pytest.mark.parametrize("scenario", HISTORIES)
async def test_a_recorded_history_replays_on_the_current_workflow(scenario: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{scenario}", HISTORIES[scenario])

    result = await Replayer(workflows=[TrainingWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None
