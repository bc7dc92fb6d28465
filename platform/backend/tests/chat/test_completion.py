"""Plan completion on both tiers: from a draft to the plan card, against the database.

Datasets and finished jobs are written as rows (what registration and a finished run leave
behind), so each rule is checked on its own: defaults as assumptions, the deployment's limits,
the project's datasets only, the estimate's basis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.models import DEFAULT_PROJECT_ID, Project
from trainyard.chat.completion import complete
from trainyard.chat.context import DatabaseContext, reading_with
from trainyard.chat.plan import PlanDraft, PlanRequest, Question, TrainingPlan
from trainyard.core.settings import BackendSettings
from trainyard.datasets.models import Dataset
from trainyard.frameworks import model_examples
from trainyard.jobs.models import Job
from trainyard.runtime import Runtime

PROJECT = DEFAULT_PROJECT_ID
OTHER_PROJECT = "prj_someone-else"
READY = {"model": "yolo11n.pt", "dataset": "shapes", "epochs": 5, "imgsz": 640, "batch": 8}
START = datetime(2026, 1, 1, tzinfo=UTC)


def report(train: int, val: int, classes: dict[str, int], errors: int = 0) -> dict[str, Any]:
    """A stored validation report, shaped as trainyard_workflows.validation.report writes it."""
    return {
        "ok": errors == 0,
        "errors": [f"error {n}" for n in range(errors)],
        "warnings": ["one label file is empty"],
        "counts": {"train": {"images": train}, "val": {"images": val}},
        "class_histogram": classes,
    }


def dataset(name: str, project: str = PROJECT, **fields: Any) -> Dataset:
    values: dict[str, Any] = {
        "status": "valid",
        "report": report(80, 20, {"circle": 40, "square": 35, "triangle": 25}),
    } | fields
    return Dataset(
        id=f"ds_{project}_{name}",
        project_id=project,
        owner="local",
        name=name,
        uri=f"file:///data/{project}/{name}",
        format="yolo",
        status=values["status"],
        report=values["report"],
        created_at=START,
    )


def finished_job(number: int, *, elapsed_s: float, project: str = PROJECT, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "model": "yolo11n.pt",
        "dataset": "shapes",
        "epochs": 10,
        "imgsz": 640,
        "batch": 8,
        "gpus": 0,
        "state": "SUCCEEDED",
    } | fields
    return Job(
        id=f"job_{project}_{number}",
        project_id=project,
        owner="local",
        framework="ultralytics",
        dataset_uri=f"file:///data/{project}/{values['dataset']}",
        task="detect",
        hyperparameters={},
        progress={"epoch": values["epochs"], "epochs": values["epochs"], "elapsed_s": elapsed_s},
        created_at=START + timedelta(minutes=number),
        updated_at=START + timedelta(minutes=number),
        **values,
    )


@pytest.fixture
async def session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as db_session:
        db_session.add(Project(id=OTHER_PROJECT, slug="someone-else", name="Someone else"))
        await db_session.flush()
        db_session.add_all(
            [
                dataset("shapes"),
                dataset("broken", status="invalid", report=report(3, 1, {}, errors=2)),
                dataset("pending", status="pending", report=None),
                dataset("secret", project=OTHER_PROJECT),
            ]
        )
        await db_session.flush()
        yield db_session


def context(session: AsyncSession, settings: BackendSettings, **limits: int) -> DatabaseContext:
    return DatabaseContext(reading_with(session), settings.model_copy(update=limits), PROJECT)


async def plan_for(
    session: AsyncSession, settings: BackendSettings, request: dict[str, Any], **limits: int
) -> TrainingPlan:
    draft = PlanDraft(request=PlanRequest.model_validate(request))
    return await complete(draft, context(session, settings, **limits))


def asked(plan: TrainingPlan) -> dict[str | None, str]:
    return {question.field: question.question for question in plan.questions}


async def test_a_full_request_is_ready_with_nothing_assumed(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"gpus": 0})

    assert plan.ready is True
    assert plan.questions == []
    assert plan.assumed == []
    assert plan.request.framework == "ultralytics"
    assert plan.job_create().model_dump(include={"model", "dataset", "epochs"}) == {
        "model": "yolo11n.pt",
        "dataset": "shapes",
        "epochs": 5,
    }


async def test_defaults_become_assumptions_with_their_reasons(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, {"model": "yolo11n", "dataset": "shapes"})

    assert plan.ready is True
    assumed = {a.field: (a.value, a.reason) for a in plan.assumed}
    assert set(assumed) == {"model", "epochs", "imgsz", "batch", "gpus"}
    assert assumed["model"][0] == "yolo11n.yaml"
    assert "random weights" in assumed["model"][1]
    assert (assumed["epochs"][0], assumed["imgsz"][0], assumed["batch"][0]) == (10, 640, 16)
    assert assumed["gpus"] == (0, "Trainyard's default (train on the CPU)")
    assert plan.request.model == "yolo11n.yaml"
    assert plan.request.task == "detect"


async def test_a_value_the_planner_asked_about_is_not_defaulted(
    session: AsyncSession, settings: BackendSettings
) -> None:
    question = Question(field="epochs", question="How many epochs exactly?")
    draft = PlanDraft(
        request=PlanRequest(model="yolo11n.pt", dataset="shapes"), questions=[question]
    )

    plan = await complete(draft, context(session, settings))

    assert plan.ready is False
    assert plan.request.epochs is None
    assert "epochs" not in {a.field for a in plan.assumed}
    assert plan.questions == [question]


LOWER_LIMITS = {"max_gpus": 2, "max_epochs": 100, "max_batch": 32}


@pytest.mark.parametrize(
    ("field", "value", "limits", "words"),
    [
        ("gpus", 10_000, {}, "Trainyard allows at most 8 GPUs per job (you asked for 10000)"),
        ("gpus", 3, LOWER_LIMITS, "Trainyard allows at most 2 GPUs per job (you asked for 3)"),
        ("epochs", 500, LOWER_LIMITS, "Trainyard allows at most 100 epochs per job"),
        ("batch", 64, LOWER_LIMITS, "Trainyard allows at most 32 batch size per job"),
    ],
)
async def test_a_value_over_the_deployments_limit_is_a_question_naming_the_limit(
    session: AsyncSession,
    settings: BackendSettings,
    field: str,
    value: int,
    limits: dict[str, int],
    words: str,
) -> None:
    plan = await plan_for(session, settings, READY | {field: value}, **limits)

    assert plan.ready is False
    assert words in asked(plan)[field]


async def test_what_jobs_would_refuse_is_a_question_about_that_field(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"imgsz": 500})

    assert plan.ready is False
    assert asked(plan) == {"imgsz": "The image size must be a multiple of 32: 480 or 512?"}


@pytest.mark.parametrize(
    ("model", "words"),
    [("resnet9000", "Trainyard cannot train 'resnet9000'"), (None, "Which model should I train?")],
)
async def test_an_unknown_or_missing_model_is_a_question_with_examples(
    session: AsyncSession, settings: BackendSettings, model: str | None, words: str
) -> None:
    plan = await plan_for(session, settings, READY | {"model": model})

    assert plan.ready is False
    [question] = plan.questions
    assert question.field == "model"
    assert words in question.question
    assert question.choices == list(model_examples())
    assert plan.request.model is None


async def test_a_framework_that_does_not_match_the_model_is_a_question(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"framework": "torchvision"})

    assert plan.ready is False
    assert "yolo11n.pt is a ultralytics model, not torchvision" in asked(plan)["framework"]


async def test_the_projects_dataset_is_summarised_from_its_validation_report(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY)

    assert plan.dataset is not None
    assert plan.dataset.model_dump() == {
        "name": "shapes",
        "status": "valid",
        "format": "yolo",
        "classes": 3,
        "class_names": ["circle", "square", "triangle"],
        "images": 100,
        "warnings": 1,
        "errors": 0,
    }


@pytest.mark.parametrize("name", ["secret", "nosuchset"])
async def test_another_projects_dataset_is_as_unknown_as_a_missing_one(
    session: AsyncSession, settings: BackendSettings, name: str
) -> None:
    plan = await plan_for(session, settings, READY | {"dataset": name})

    assert plan.ready is False
    assert plan.dataset is None
    [question] = plan.questions
    assert question.field == "dataset"
    assert question.question == (
        f"You have no dataset named {name!r}. Yours: broken, pending, shapes."
    )
    assert question.choices == ["broken", "pending", "shapes"]


async def test_a_dataset_that_failed_validation_is_a_question_offering_the_others(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"dataset": "broken"})

    assert plan.ready is False
    [question] = plan.questions
    assert "failed validation (2 error(s)" in question.question
    assert question.choices == ["pending", "shapes"]
    assert plan.dataset is not None
    assert plan.dataset.status == "invalid"


async def test_a_dataset_still_being_validated_can_be_planned_without_an_estimate(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"dataset": "pending"})

    assert plan.ready is True
    assert plan.dataset is not None
    assert (plan.dataset.status, plan.dataset.images, plan.dataset.classes) == (
        "pending",
        None,
        None,
    )
    assert plan.estimate is None  # no image count, no duration


async def test_a_dataset_uri_is_left_to_the_submission_to_check(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"dataset": "s3://bucket/shapes"})

    assert plan.ready is True
    assert plan.dataset is None
    assert plan.estimate is None


async def test_a_missing_dataset_is_a_question_listing_the_projects_datasets(
    session: AsyncSession, settings: BackendSettings
) -> None:
    plan = await plan_for(session, settings, READY | {"dataset": None})

    assert asked(plan) == {"dataset": "Which dataset? Yours: broken, pending, shapes."}


async def test_without_finished_runs_the_estimate_is_a_rough_guess_that_says_so(
    session: AsyncSession, settings: BackendSettings
) -> None:
    on_cpu = await plan_for(session, settings, READY | {"gpus": 0})
    on_gpu = await plan_for(session, settings, READY | {"gpus": 1})

    assert on_cpu.estimate is not None
    assert on_gpu.estimate is not None
    assert on_cpu.estimate.basis == "a rough guess: no finished run of yolo11n.pt on CPU yet"
    assert on_gpu.estimate.basis == "a rough guess: no finished run of yolo11n.pt on GPU yet"
    assert on_gpu.estimate.seconds < on_cpu.estimate.seconds


async def test_the_estimate_scales_the_projects_finished_runs_of_the_model(
    session: AsyncSession, settings: BackendSettings
) -> None:
    # Two CPU runs on shapes (100 images), 10 epochs each, 15 s of start-up: 0.1 and 0.3 s
    # per image and epoch; the median 0.2 s.
    session.add_all(
        [
            finished_job(1, elapsed_s=115.0),
            finished_job(2, elapsed_s=315.0),
            finished_job(3, elapsed_s=9_999.0, state="FAILED"),
            finished_job(4, elapsed_s=9_999.0, model="yolov8s.pt"),
            finished_job(5, elapsed_s=9_999.0, gpus=1),
            finished_job(6, elapsed_s=9_999.0, project=OTHER_PROJECT),
        ]
    )
    await session.flush()

    same = await plan_for(session, settings, READY | {"epochs": 10, "gpus": 0})
    half_size = await plan_for(session, settings, READY | {"epochs": 10, "imgsz": 320, "gpus": 0})
    longer = await plan_for(session, settings, READY | {"epochs": 30, "gpus": 0})

    assert same.estimate is not None
    assert half_size.estimate is not None
    assert longer.estimate is not None
    assert same.estimate.basis == "from 2 finished runs of yolo11n.pt"
    assert same.estimate.seconds == pytest.approx(15 + 0.2 * 100 * 10)
    assert half_size.estimate.seconds == pytest.approx(15 + 0.2 / 4 * 100 * 10)
    assert longer.estimate.seconds == pytest.approx(15 + 0.2 * 100 * 30)


async def test_recent_jobs_are_the_projects_newest_first(
    session: AsyncSession, settings: BackendSettings
) -> None:
    session.add_all(
        [
            finished_job(1, elapsed_s=60.0),
            finished_job(2, elapsed_s=60.0, project=OTHER_PROJECT),
            finished_job(3, elapsed_s=60.0, state="FAILED"),
        ]
    )
    await session.flush()

    recent = await context(session, settings).recent_jobs()

    assert [job.id for job in recent] == ["job_default_3", "job_default_1"]
    assert recent[0].state == "FAILED"


async def test_problems_name_only_what_is_wrong_with_the_values_given(
    session: AsyncSession, settings: BackendSettings
) -> None:
    planner_context = context(session, settings)
    fine_so_far = PlanDraft(request=PlanRequest(model="yolo11n.pt"))
    wrong = PlanDraft(request=PlanRequest(model="yolo11n.pt", dataset="secret", gpus=64))

    assert await planner_context.problems(fine_so_far) == []
    assert await planner_context.problems(wrong) == [
        "You have no dataset named 'secret'. Yours: broken, pending, shapes.",
        "Trainyard allows at most 8 GPUs per job (you asked for 64). How many should I use?",
    ]
