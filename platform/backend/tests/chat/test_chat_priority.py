"""The chat reads a priority ("high priority", "priority: low", "urgent") into the plan, and
the plan's job carries it (a level above the user's cap: test_chat_priority_cap.py)."""

from __future__ import annotations

import pytest

from trainyard.chat.grammar import parse
from trainyard.chat.plan import PlanRequest, TrainingPlan


@pytest.mark.parametrize(
    ("message", "priority"),
    [
        ("train yolo11n on shapes for 5 epochs with high priority", "high"),
        ("urgent: train yolo11n on shapes", "urgent"),
        ("train yolo11n on shapes, priority: low", "low"),
        ("train yolo11n on shapes", None),
    ],
)
def test_the_grammar_reads_a_priority_level(message: str, priority: str | None) -> None:
    draft = parse(message)

    assert draft.request.priority == priority
    assert (draft.request.model, draft.request.dataset) == ("yolo11n", "shapes")
    assert draft.questions == []


def test_the_plans_job_carries_the_priority_and_defaults_to_normal() -> None:
    fields = {"framework": "ultralytics", "model": "yolo11n.pt", "dataset": "shapes"}
    asked = TrainingPlan(request=PlanRequest(**fields, priority="high"))
    plain = TrainingPlan(request=PlanRequest(**fields))

    assert asked.job_create().priority == "high"
    assert plain.job_create().priority == "normal"
