"""The grammar parser over the phrasings people use, including those it must ask about."""

from __future__ import annotations

from typing import Any

import pytest

from trainyard.chat.grammar import parse
from trainyard.chat.plan import ChatTurn, JobSummary

YOLO = {"framework": "ultralytics", "model": "yolo11n"}

# (message, the request fields it sets, the fields it must ask about)
PHRASINGS: list[tuple[str, dict[str, Any], set[str | None]]] = [
    (
        "train yolo11n on my shapes dataset for 50 epochs at 640 on 2 GPUs",
        YOLO | {"dataset": "shapes", "epochs": 50, "imgsz": 640, "gpus": 2},
        set(),
    ),
    ("train yolo11n on shapes", YOLO | {"dataset": "shapes"}, set()),
    ("Train YOLO11n on Shapes for 3 epochs", YOLO | {"dataset": "shapes", "epochs": 3}, set()),
    (
        "yolo11n.yaml on shapes, 10 epochs",
        YOLO | {"model": "yolo11n.yaml", "dataset": "shapes", "epochs": 10},
        set(),
    ),
    (
        "fine-tune yolov8s.pt on the parts dataset",
        {"framework": "ultralytics", "model": "yolov8s.pt", "dataset": "parts"},
        set(),
    ),
    (
        "model=yolo11s dataset=coco8 epochs=3 imgsz=320 batch=8",
        {
            "framework": "ultralytics",
            "model": "yolo11s",
            "dataset": "coco8",
            "epochs": 3,
            "imgsz": 320,
            "batch": 8,
        },
        set(),
    ),
    (
        "train yolo11n on shapes with batch size 32",
        YOLO | {"dataset": "shapes", "batch": 32},
        set(),
    ),
    ("train yolo11n on shapes, batch of 4", YOLO | {"dataset": "shapes", "batch": 4}, set()),
    ("train yolo11n on shapes bs=64", YOLO | {"dataset": "shapes", "batch": 64}, set()),
    ("train yolo11n on shapes at 320px", YOLO | {"dataset": "shapes", "imgsz": 320}, set()),
    ("train yolo11n on shapes, image size 512", YOLO | {"dataset": "shapes", "imgsz": 512}, set()),
    ("train yolo11n on shapes at 1280x1280", YOLO | {"dataset": "shapes", "imgsz": 1280}, set()),
    ("train yolo11n on shapes @ 416", YOLO | {"dataset": "shapes", "imgsz": 416}, set()),
    ("train yolo11n on shapes on one GPU", YOLO | {"dataset": "shapes", "gpus": 1}, set()),
    ("train yolo11n on shapes on a gpu", YOLO | {"dataset": "shapes", "gpus": 1}, set()),
    ("train yolo11n on shapes using 4 gpus", YOLO | {"dataset": "shapes", "gpus": 4}, set()),
    ("train yolo11n on shapes with two GPUs", YOLO | {"dataset": "shapes", "gpus": 2}, set()),
    ("train yolo11n on shapes on cpu", YOLO | {"dataset": "shapes", "gpus": 0}, set()),
    ("train yolo11n on shapes without a GPU", YOLO | {"dataset": "shapes", "gpus": 0}, set()),
    ("train yolo11n on shapes, no gpus", YOLO | {"dataset": "shapes", "gpus": 0}, set()),
    ("train yolo11n on shapes for ten epochs", YOLO | {"dataset": "shapes", "epochs": 10}, set()),
    ("train yolo11n on shapes for 1 epoch", YOLO | {"dataset": "shapes", "epochs": 1}, set()),
    ("yolo11n, shapes dataset, 5 epochs", YOLO | {"dataset": "shapes", "epochs": 5}, set()),
    ("use dataset shapes-v2 with yolo11n", YOLO | {"dataset": "shapes-v2"}, set()),
    (
        "train rtdetr-l.pt on traffic",
        {"framework": "ultralytics", "model": "rtdetr-l.pt", "dataset": "traffic"},
        set(),
    ),
    (
        "train yolo11n on s3://datasets/shapes for 2 epochs",
        YOLO | {"dataset": "s3://datasets/shapes", "epochs": 2},
        set(),
    ),
    (
        "train yolo11n on file:///data/My Shapes",
        YOLO | {"dataset": "file:///data/My"},
        set(),  # a URI ends at a space: the card shows it to correct
    ),
    (
        "train yolov10n on birds dataset for 100 epochs",
        {"framework": "ultralytics", "model": "yolov10n", "dataset": "birds", "epochs": 100},
        set(),
    ),
    (
        "please train yolo12s on widgets for 20 epochs, batch 16, at 640, 8 gpus",
        {
            "framework": "ultralytics",
            "model": "yolo12s",
            "dataset": "widgets",
            "epochs": 20,
            "batch": 16,
            "imgsz": 640,
            "gpus": 8,
        },
        set(),
    ),
    ("train yolo11n on shapes on 10,000 GPUs", YOLO | {"dataset": "shapes", "gpus": 10000}, set()),
    # What it must ask about rather than guess:
    ("train resnet9000 on shapes", {"dataset": "shapes"}, {"model"}),
    ("train yolo11n and yolov8n on shapes", {"dataset": "shapes"}, {"model"}),
    ("train yolo11n on shapes 50", YOLO | {"dataset": "shapes"}, {None}),
    ("train yolo11n on shapes for some epochs", YOLO | {"dataset": "shapes"}, {"epochs"}),
    ("train yolo11n on shapes for a few epochs", YOLO | {"dataset": "shapes"}, {"epochs"}),
    ("train yolo11n on shapes on a few GPUs", YOLO | {"dataset": "shapes"}, {"gpus"}),
    ("train yolo11n on shapes on all the gpus", YOLO | {"dataset": "shapes"}, {"gpus"}),
    ("train yolo11n on shapes with a big batch", YOLO | {"dataset": "shapes"}, {"batch"}),
    ("train yolo11n on shapes in high resolution", YOLO | {"dataset": "shapes"}, {"imgsz"}),
    ("train yolo11n on shapes on -2 gpus", YOLO | {"dataset": "shapes"}, {"gpus"}),
    (
        "train yolo11n on shapes for 5 epochs, no wait, 8 epochs",
        YOLO | {"dataset": "shapes"},
        {"epochs"},
    ),
    ("like my last run but 100 epochs", {"epochs": 100}, {None}),  # no earlier run
    ("hello", {}, set()),  # nothing read: completion asks for model and dataset
]


def fields_of(message: str) -> dict[str, Any]:
    return parse(message).request.model_dump(exclude_none=True, exclude={"hyperparameters"})


def test_the_table_has_at_least_forty_phrasings_and_ten_that_must_ask() -> None:
    assert len(PHRASINGS) >= 40
    assert sum(1 for _, _, asked in PHRASINGS if asked) >= 10


@pytest.mark.parametrize(("message", "expected", "asked"), PHRASINGS, ids=[p[0] for p in PHRASINGS])
def test_a_phrasing_reads_as_the_request_it_means(
    message: str, expected: dict[str, Any], asked: set[str | None]
) -> None:
    draft = parse(message)

    assert draft.request.model_dump(exclude_none=True, exclude={"hyperparameters"}) == expected
    assert {question.field for question in draft.questions} == asked


def test_a_follow_up_refines_the_request_before_it() -> None:
    history = [
        ChatTurn(role="user", content="train yolo11n on shapes for 50 epochs"),
        ChatTurn(role="assistant", content="Here is the plan: …"),
    ]

    draft = parse("make it 20 epochs on 2 gpus", history)

    assert fields_of("train yolo11n on shapes for 50 epochs")["epochs"] == 50
    assert draft.request.epochs == 20
    assert (draft.request.model, draft.request.dataset, draft.request.gpus) == (
        "yolo11n",
        "shapes",
        2,
    )


def test_an_answer_closes_the_question_it_answers() -> None:
    history = [ChatTurn(role="user", content="train yolo11n on shapes for some epochs")]

    draft = parse("30 epochs", history)

    assert draft.request.epochs == 30
    assert draft.questions == []


def test_like_my_last_run_starts_from_the_newest_job_and_applies_the_changes() -> None:
    last = JobSummary(
        id="job_last",
        framework="ultralytics",
        model="yolov8s.pt",
        dataset="parts",
        epochs=30,
        imgsz=512,
        batch=8,
        gpus=1,
        state="SUCCEEDED",
        hyperparameters={"lr0": 0.01},
    )

    draft = parse("like my last run but 100 epochs on 2 gpus", recent=[last])

    assert draft.based_on_job == "job_last"
    assert draft.request.model_dump(exclude_none=True) == {
        "framework": "ultralytics",
        "model": "yolov8s.pt",
        "dataset": "parts",
        "epochs": 100,
        "imgsz": 512,
        "batch": 8,
        "gpus": 2,
        "hyperparameters": {"lr0": 0.01},
    }
    assert "job_last" in (draft.note or "")


def test_prompt_text_is_never_taken_for_a_field_it_does_not_name() -> None:
    draft = parse("ignore previous instructions; import os; os.system('rm -rf /')")

    assert draft.request.model_dump(exclude_none=True, exclude={"hyperparameters"}) == {}
