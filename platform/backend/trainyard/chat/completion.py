"""From what a planner read to the plan card: the same for the grammar parser and the LLM.

Defaults become visible assumptions; what is missing or cannot run becomes a question (an
unknown model, a dataset the user does not have, more GPUs than the platform allows); the
dataset is looked up (status, classes, images) and the duration estimated. A plan is `ready`
only with no question left and a request that `POST /v1/jobs` would accept.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from trainyard.admission.priorities import PRIORITY_NAMES, PriorityName
from trainyard.chat.estimate import estimate_duration
from trainyard.chat.plan import (
    Assumption,
    DatasetSummary,
    PlanDraft,
    PlanRequest,
    Question,
    TrainingPlan,
)
from trainyard.core.settings import BackendSettings
from trainyard.frameworks import DEFAULT_FRAMEWORK, FRAMEWORKS, known_model, model_examples
from trainyard.frameworks.job_create import job_defaults, parse_job_create
from trainyard.jobs.models import Job
from trainyard_workflows.capacity import Capacity, never_fits

# The task a framework trains on a dataset of this format, where it is not its default.
_TASK_OF_FORMAT = {("huggingface", "text"): "text-classification"}
_LABELS = {"epochs": "epochs", "imgsz": "image size", "batch": "batch size", "gpus": "GPUs"}


class CompletionContext(Protocol):
    """What completing a draft looks up about the owner's world. `DatabaseContext` is one, and
    completes drafts itself (its `problems`): it imports this module, never the reverse."""

    settings: BackendSettings

    async def datasets(self) -> list[DatasetSummary]: ...

    async def finished_jobs(self, model: str, limit: int = 10) -> list[Job]:
        """The owner's newest SUCCEEDED jobs of `model` (for the duration estimate)."""
        ...

    async def capacity(self) -> Capacity | None:
        """What the workers reported the platform has; None until one did."""
        ...

    async def priority_refusals(self) -> dict[PriorityName, str]:
        """The priority levels the caller may not ask for in the project, each with the reason
        `POST /v1/jobs` refuses it with (trainyard.admission.submit_rules)."""
        ...


async def complete(draft: PlanDraft, context: CompletionContext) -> TrainingPlan:
    request = draft.request.model_copy(deep=True)
    questions = list(draft.questions)
    asked = {question.field for question in questions}
    assumed: list[Assumption] = []

    _complete_model(request, questions, asked, assumed)
    datasets = {summary.name: summary for summary in await context.datasets()}
    dataset = _complete_dataset(request, questions, asked, datasets)
    framework = request.framework or "ultralytics"
    defaults = job_defaults(framework if framework in FRAMEWORKS else DEFAULT_FRAMEWORK)
    task = _TASK_OF_FORMAT.get((framework, dataset.format)) if dataset else None
    if task is not None:
        defaults["task"] = task
    for name, default in defaults.items():
        if getattr(request, name) is None and name not in asked:
            setattr(request, name, default)
            if name != "task":
                why = "Trainyard's default" + (" (train on the CPU)" if name == "gpus" else "")
                assumed.append(Assumption(field=name, value=default, reason=why))
    questions += _limit_questions(request, context, asked)
    questions += _capacity_questions(request, await context.capacity(), questions, asked)
    questions += await _priority_questions(request, context, asked)
    if not questions:
        questions += _validation_questions(request)

    estimate = None
    # The card shows an estimate next to its questions, so the request may still be invalid:
    # estimate only from numbers a job would accept (a negative epoch count has a negative
    # duration, an image size of 10**157 overflows a float).
    refused = {question.field for question in _validation_questions(request)}
    if (
        request.model
        and request.epochs
        and request.imgsz
        and request.gpus is not None
        and not refused & {"epochs", "imgsz", "gpus"}
    ):
        past = [
            (job, datasets[job.dataset].images or 0)
            for job in await context.finished_jobs(request.model)
            if job.dataset in datasets
        ]
        estimate = estimate_duration(
            model=request.model,
            epochs=request.epochs,
            imgsz=request.imgsz,
            gpus=request.gpus,
            dataset=dataset,
            past=past,
        )
    return TrainingPlan(
        request=request,
        assumed=assumed,
        questions=questions,
        dataset=dataset,
        estimate=estimate,
        based_on_job=draft.based_on_job,
        ready=not questions,
    )


def _complete_model(
    request: PlanRequest,
    questions: list[Question],
    asked: set[str | None],
    assumed: list[Assumption],
) -> None:
    if request.model is None:
        if "model" not in asked:
            questions.append(
                Question(
                    field="model",
                    question="Which model should I train?",
                    choices=list(model_examples()),
                )
            )
        return
    recognised = known_model(request.model)
    if recognised is None:
        questions.append(
            Question(
                field="model",
                question=f"Trainyard cannot train {request.model!r}. Which model should I train?",
                choices=list(model_examples()),
            )
        )
        request.model = None
        return
    framework, model = recognised
    if model.endswith(".yaml") and not request.model.endswith(".yaml"):
        assumed.append(
            Assumption(
                field="model",
                value=model,
                reason="the architecture from its config, trained from random weights "
                "(name a .pt file to start from pretrained weights)",
            )
        )
    request.model = model
    if request.framework is not None and request.framework != framework:
        questions.append(
            Question(
                field="framework",
                question=f"{model} is a {framework} model, not {request.framework}: "
                f"train it with {framework}?",
                choices=[framework],
            )
        )
    request.framework = framework


def _complete_dataset(
    request: PlanRequest,
    questions: list[Question],
    asked: set[str | None],
    datasets: dict[str, DatasetSummary],
) -> DatasetSummary | None:
    names = sorted(datasets)
    if request.dataset is None:
        if "dataset" not in asked:
            mine = f" Yours: {', '.join(names)}." if names else " You have none yet: upload one."
            questions.append(
                Question(field="dataset", question=f"Which dataset?{mine}", choices=names)
            )
        return None
    if ":" in request.dataset:  # a file:// or s3:// URI: checked when the job is submitted
        return None
    summary = datasets.get(request.dataset)
    if summary is None:
        mine = f"Yours: {', '.join(names)}." if names else "You have none yet: upload one."
        questions.append(
            Question(
                field="dataset",
                question=f"You have no dataset named {request.dataset!r}. {mine}",
                choices=names,
            )
        )
        return None
    if summary.status == "invalid":
        questions.append(
            Question(
                field="dataset",
                question=f"Dataset {summary.name!r} failed validation ({summary.errors} "
                "error(s), see its report). Which dataset should I use instead?",
                choices=[name for name in names if datasets[name].status != "invalid"],
            )
        )
    return summary


def _limit_questions(
    request: PlanRequest, context: CompletionContext, asked: set[str | None]
) -> list[Question]:
    settings = context.settings
    limits = {"epochs": settings.max_epochs, "batch": settings.max_batch, "gpus": settings.max_gpus}
    questions = []
    for name, limit in limits.items():
        value = getattr(request, name)
        if value is not None and value > limit and name not in asked:
            questions.append(
                Question(
                    field=name,
                    question=f"Trainyard allows at most {limit} {_LABELS[name]} per job "
                    f"(you asked for {value}). How many should I use?",
                    choices=[str(limit)],
                )
            )
    return questions


def _capacity_questions(
    request: PlanRequest,
    capacity: Capacity | None,
    questions: list[Question],
    asked: set[str | None],
) -> list[Question]:
    """GPUs this platform can never give one job: the sentence `POST /v1/jobs` refuses with."""
    already = asked | {question.field for question in questions}
    if capacity is None or request.gpus is None or "gpus" in already:
        return []
    reason = never_fits(capacity, request.gpus)
    if reason is None:
        return []
    return [
        Question(
            field="gpus",
            question=f"{reason[:1].upper()}{reason[1:]}.",
            choices=[str(capacity.largest_node_gpus)],
        )
    ]


async def _priority_questions(
    request: PlanRequest, context: CompletionContext, asked: set[str | None]
) -> list[Question]:
    """A priority above the caller's cap, asked before Start rather than refused after it."""
    if request.priority is None or "priority" in asked:
        return []
    refusals = await context.priority_refusals()
    reason = refusals.get(request.priority)
    if reason is None:
        return []
    return [
        Question(
            field="priority",
            question=f"You may not ask for {request.priority} priority: {reason}. "
            "Which priority should I use?",
            choices=[name for name in PRIORITY_NAMES if name not in refusals],
        )
    ]


def _validation_questions(request: PlanRequest) -> list[Question]:
    """What `POST /v1/jobs` would refuse, as questions naming the field."""
    try:
        parse_job_create(request.model_dump(exclude_none=True))
    except ValidationError as error:
        return [
            Question(
                field=str(detail["loc"][0]) if detail["loc"] else None,
                question=_field_message(detail),
            )
            for detail in error.errors()
        ]
    return []


def _field_message(detail: Any) -> str:
    loc = ".".join(str(part) for part in detail["loc"])
    name = _LABELS.get(loc, loc)
    if detail["type"] == "multiple_of":
        value = detail.get("input")
        if isinstance(value, int):
            lower, upper = value // 32 * 32, (value // 32 + 1) * 32
            return f"The image size must be a multiple of 32: {lower or 32} or {upper}?"
    return f"The {name} is not valid: {detail['msg']}."
