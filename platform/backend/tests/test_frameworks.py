"""Jobs of every framework: each framework's fields, defaults, models and hyperparameters, the
`GET /v1/frameworks` description, and the model lists kept in step with the trainers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard.frameworks import known_model

REPO = Path(__file__).resolve().parents[3]
FRAMEWORKS_DIR = REPO / "platform" / "backend" / "trainyard" / "frameworks"


async def submitted(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def refused_fields(api: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    response = await api.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    return [error["field"] for error in response.json()["errors"]]


@pytest.fixture
def dataset_uri(job_body: dict[str, Any]) -> str:
    return str(job_body["dataset"])


async def test_a_timm_job_takes_timm_defaults_and_keeps_only_the_hyperparameters_set(
    api: httpx.AsyncClient, dataset_uri: str
) -> None:
    body = {
        "framework": "timm",
        "model": "resnet18",
        "dataset": dataset_uri,
        "hyperparameters": {"lr": 0.01, "optimizer": "sgd"},
    }

    job = await submitted(api, body)

    assert (job["framework"], job["task"], job["imgsz"], job["batch"]) == (
        "timm",
        "classify",
        224,
        32,
    )
    assert job["hyperparameters"] == {"lr": 0.01, "optimizer": "sgd"}


async def test_a_huggingface_text_job_keeps_its_model_config(
    api: httpx.AsyncClient, dataset_uri: str
) -> None:
    tiny = {"hidden_size": 32, "num_hidden_layers": 2}
    body = {
        "framework": "huggingface",
        "model": "bert",
        "task": "text-classification",
        "dataset": dataset_uri,
        "hyperparameters": {"model_config": tiny, "max_length": 32},
    }

    job = await submitted(api, body)

    assert (job["task"], job["imgsz"]) == ("text-classification", 224)
    assert job["hyperparameters"] == {"model_config": tiny, "max_length": 32}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"framework": "timm", "model": "yolo11n.yaml"}, "model"),
        ({"framework": "timm", "model": "resnet9000"}, "model"),
        ({"framework": "timm", "model": "resnet18", "task": "detect"}, "task"),
        (
            {"framework": "timm", "model": "resnet18", "hyperparameters": {"lr": -1.0}},
            "hyperparameters.lr",
        ),
        (
            {"framework": "timm", "model": "resnet18", "hyperparameters": {"lr0": 0.01}},
            "hyperparameters.lr0",
        ),
        ({"framework": "timm", "model": "resnet18", "imgsz": 8}, "imgsz"),
        ({"framework": "huggingface", "model": "bert"}, "model"),  # bert cannot classify images
        ({"framework": "huggingface", "model": "vit", "task": "segment"}, "task"),
        (
            {"framework": "huggingface", "model": "vit", "hyperparameters": {"fp16": "yes"}},
            "hyperparameters.fp16",
        ),
        ({"framework": "huggingface", "model": "../weights"}, "model"),
        ({"framework": "ultralytics", "model": "resnet18"}, "model"),
    ],
)
async def test_a_field_the_framework_does_not_accept_is_422_naming_it(
    api: httpx.AsyncClient, job_body: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in job_body.items() if k not in ("task", "hyperparameters", "imgsz")}

    assert field in await refused_fields(api, body | change)


async def test_frameworks_are_described_with_their_tasks_defaults_and_request_schema(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/v1/frameworks")

    assert response.status_code == 200
    frameworks = {item["name"]: item for item in response.json()}
    assert list(frameworks) == ["ultralytics", "timm", "huggingface"]
    assert frameworks["huggingface"]["tasks"] == ["image-classification", "text-classification"]
    assert frameworks["timm"]["defaults"] == {
        "task": "classify",
        "epochs": 10,
        "imgsz": 224,
        "batch": 32,
        "gpus": 0,
    }
    hyperparameters = frameworks["timm"]["job_schema"]["$defs"]["TimmHyperparameters"]
    assert "label_smoothing" in hyperparameters["properties"]
    assert "resnet18" in frameworks["timm"]["example_models"]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("yolo11n", ("ultralytics", "yolo11n.yaml")),
        ("ResNet18", ("timm", "resnet18")),
        ("convnext_tiny", ("timm", "convnext_tiny")),
        ("BERT", ("huggingface", "bert")),
        ("shapes", None),
    ],
)
def test_a_model_word_names_its_framework(word: str, expected: tuple[str, str] | None) -> None:
    assert known_model(word) == expected


def _tool() -> Any:
    """tools/framework_models.py, the script that writes the lists (not a package)."""
    path = REPO / "platform" / "backend" / "tools" / "framework_models.py"
    spec = importlib.util.spec_from_file_location("framework_models", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


@pytest.mark.parametrize("name", sorted(TOOL.LISTS))
def test_the_model_lists_match_what_the_trainers_libraries_know(name: str) -> None:
    trainer, program = TOOL.LISTS[name]
    python = REPO / "trainers" / trainer / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"the {trainer} trainer environment is missing ({python}): run `make trainers`")
    assert (FRAMEWORKS_DIR / name).read_text(encoding="utf-8") == TOOL.installed_names(
        trainer, program
    ), f"{name} is stale: run `uv run python platform/backend/tools/framework_models.py`"
