"""`trainyard`: submit, list, watch and cancel training jobs; run the embedded platform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from trainyard.cli.caller import choose_project
from trainyard.cli.client import PlatformError
from trainyard.cli.dataset_view import (
    DatasetFormat,
    archive_for_upload,
    show_dataset_report,
)
from trainyard.cli.embedded_commands import demo, up
from trainyard.cli.hyperparameters import BadHyperparameter, parse_overrides
from trainyard.cli.platform_calls import (
    call,
    console,
    err_console,
    fail,
    register_dataset,
    submit_job,
    watch_job,
)
from trainyard.cli.quota_commands import projects_app
from trainyard.cli.sign_in_commands import login, logout, whoami
from trainyard.datasets.synthetic_classes import ClassesSpec, make_classes
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.datasets.synthetic_text import TextSpec, make_text
from trainyard.frameworks import known_model

app = typer.Typer(help="Trainyard: train vision and ML models.", no_args_is_help=True)
datasets_app = typer.Typer(help="Create and list datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(projects_app, name="projects")
app.command()(up)
app.command()(demo)
app.command()(login)
app.command()(logout)
app.command()(whoami)


@app.callback()
def _global_options(
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "-p",
            help="the project every request acts in (a slug; default: TRAINYARD_PROJECT, "
            "else your default project)",
        ),
    ] = None,
) -> None:
    """Trainyard: train vision and ML models."""
    # Every invocation sets it (None included): a second one in this process starts clean.
    choose_project(project)


OutputOption = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def infer_framework(model: str) -> str:
    """The framework whose model `model` names (`yolo11n.yaml`, `resnet18`, `bert`)."""
    recognised = known_model(model)
    if recognised is not None:
        return recognised[0]
    if model.lower().startswith("yolo"):
        return "ultralytics"
    raise PlatformError(
        f"cannot tell the framework of model {model!r}: pass --framework "
        "(ultralytics, timm or huggingface)"
    )


@app.command()
def train(
    model: Annotated[
        str,
        typer.Argument(
            help="yolo11n.yaml (ultralytics), resnet18 (timm), bert or vit (huggingface), "
            "or a weights file"
        ),
    ],
    data: Annotated[str, typer.Option("--data", "-d", help="dataset name or URI")],
    epochs: Annotated[int, typer.Option(help="number of epochs")] = 10,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="hyperparameters as key=value")
    ] = None,
    imgsz: Annotated[
        int | None, typer.Option(help="image size (default: the framework's: 640 or 224)")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="batch size (default: the framework's)")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs (0 = CPU)")] = 0,
    priority: Annotated[
        str, typer.Option(help="low, normal, high or urgent (capped by your role)")
    ] = "normal",
    task: Annotated[
        str | None,
        typer.Option(
            help="detect (ultralytics), classify (timm), image-classification or "
            "text-classification (huggingface); default: the framework's first"
        ),
    ] = None,
    framework: Annotated[str | None, typer.Option(help="inferred from the model")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="resubmits return the same job")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch/--no-watch", help="follow it live")] = False,
) -> None:
    """Submit a training job."""
    try:
        body: dict[str, Any] = {
            "framework": framework or infer_framework(model),
            "model": model,
            "dataset": data,
            "epochs": epochs,
            "gpus": gpus,
            "priority": priority,
            "hyperparameters": parse_overrides(overrides or []),
        }
        # Left out when not given: the framework's defaults apply.
        optional = {"task": task, "imgsz": imgsz, "batch": batch}
        body |= {name: value for name, value in optional.items() if value is not None}
    except (BadHyperparameter, PlatformError) as exc:
        fail(str(exc))
    job = submit_job(body, idempotency_key)
    if watch:
        _watch_and_exit(job["id"])


@app.command()
def jobs(
    state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(help="how many")] = 20,
    output: OutputOption = "table",
) -> None:
    """List recent jobs."""
    page = call(lambda c: c.list_jobs(state, limit))
    items = page["items"]
    if output == "json":
        console.print_json(json.dumps(page))
        return
    table = Table("id", "state", "model", "dataset", "epoch", "created")
    for job in items:
        progress = job.get("progress") or {}
        epoch = f"{progress.get('epoch', 0)}/{job['epochs']}"
        queue = job.get("queue") or {}
        state = f"{job['state']} #{queue['position']}" if queue.get("position") else job["state"]
        table.add_row(job["id"], state, job["model"], job["dataset"], epoch, job["created_at"])
    console.print(table)


@app.command()
def watch(job_id: Annotated[str, typer.Argument(help="job id")]) -> None:
    """Follow a job live until it ends; exit 0 only if it succeeded."""
    _watch_and_exit(job_id)


@app.command()
def cancel(job_id: Annotated[str, typer.Argument(help="job id")]) -> None:
    """Cancel a job: its trainer is stopped and cleaned up."""
    job = call(lambda c: c.cancel_job(job_id))
    console.print(f"cancel requested for [bold]{job['id']}[/] ({job['state']})")


@datasets_app.command("make-shapes")
def make_shapes_command(
    out: Annotated[Path, typer.Option(help="folder to write")] = Path(".trainyard/datasets/shapes"),
    name: Annotated[str, typer.Option(help="name to register it under")] = "shapes",
    train_images: Annotated[int, typer.Option(help="training images")] = 32,
    val_images: Annotated[int, typer.Option(help="validation images")] = 8,
    size: Annotated[int, typer.Option(help="image side in pixels")] = 128,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    register: Annotated[bool, typer.Option("--register/--no-register")] = True,
) -> None:
    """Generate the synthetic shapes detection dataset (and register it)."""
    spec = ShapesSpec(train_images=train_images, val_images=val_images, image_size=size, seed=seed)
    generated = make_shapes(out.resolve(), spec)
    console.print(
        f"wrote {generated.train_images} train + {generated.val_images} val images "
        f"({generated.boxes} boxes) to {generated.root}"
    )
    if register:
        dataset = register_dataset(name, generated.uri)
        console.print(f"registered dataset [bold]{dataset['name']}[/] → {dataset['uri']}")


@datasets_app.command("make-classification")
def make_classification_command(
    out: Annotated[Path, typer.Option(help="folder to write")] = Path(
        ".trainyard/datasets/shape-classes"
    ),
    name: Annotated[str, typer.Option(help="name to register it under")] = "shape-classes",
    train_per_class: Annotated[int, typer.Option(min=1, help="training images per class")] = 12,
    val_per_class: Annotated[int, typer.Option(min=1, help="validation images per class")] = 4,
    size: Annotated[int, typer.Option(min=16, help="image side in pixels")] = 64,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    register: Annotated[bool, typer.Option("--register/--no-register")] = True,
) -> None:
    """Generate a synthetic image-classification dataset, ImageFolder layout (timm, Hugging
    Face), and register it."""
    spec = ClassesSpec(train_per_class, val_per_class, size, seed)
    generated = make_classes(out.resolve(), spec)
    console.print(
        f"wrote {generated.train_images} train + {generated.val_images} val images of "
        f"{len(generated.classes)} classes ({', '.join(generated.classes)}) to {generated.root}"
    )
    if register:
        dataset = register_dataset(name, generated.uri, "imagefolder")
        console.print(f"registered dataset [bold]{dataset['name']}[/] → {dataset['uri']}")


@datasets_app.command("make-text")
def make_text_command(
    out: Annotated[Path, typer.Option(help="folder to write")] = Path(".trainyard/datasets/topics"),
    name: Annotated[str, typer.Option(help="name to register it under")] = "topics",
    train_per_label: Annotated[int, typer.Option(min=1, help="training samples per label")] = 40,
    val_per_label: Annotated[int, typer.Option(min=1, help="validation samples per label")] = 10,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    register: Annotated[bool, typer.Option("--register/--no-register")] = True,
) -> None:
    """Generate a synthetic text-classification dataset (train/val JSONL with text and
    label: Hugging Face), and register it."""
    generated = make_text(out.resolve(), TextSpec(train_per_label, val_per_label, seed=seed))
    console.print(
        f"wrote {generated.train_samples} train + {generated.val_samples} val samples of "
        f"{len(generated.labels)} labels ({', '.join(generated.labels)}) to {generated.root}"
    )
    if register:
        dataset = register_dataset(name, generated.uri, "text")
        console.print(f"registered dataset [bold]{dataset['name']}[/] → {dataset['uri']}")


@datasets_app.command("list")
def list_datasets(output: OutputOption = "table") -> None:
    """List registered datasets."""
    page = call(lambda c: c.list_datasets())
    if output == "json":
        console.print_json(json.dumps(page))
        return
    table = Table("id", "name", "format", "uri")
    for dataset in page["items"]:
        table.add_row(dataset["id"], dataset["name"], dataset["format"], dataset["uri"])
    console.print(table)


@datasets_app.command("upload")
def upload_dataset(
    path: Annotated[Path, typer.Argument(help="a dataset folder, or a .zip of one")],
    name: Annotated[str | None, typer.Option(help="default: the folder name")] = None,
    fmt: Annotated[
        DatasetFormat,
        typer.Option("--format", help="yolo (detection), imagefolder or text (classification)"),
    ] = DatasetFormat.yolo,
    output: OutputOption = "table",
) -> None:
    """Upload a dataset to storage; the platform validates it and shows the report."""
    if not path.exists():
        fail(f"{path} does not exist")
    dataset_name = name or (path.stem if path.is_file() else path.resolve().name)
    with archive_for_upload(path) as archive:
        size = archive.seek(0, 2)
        archive.seek(0)
        with Progress(
            TextColumn("uploading {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task(dataset_name, total=size)
            dataset = call(
                lambda c: c.upload_dataset(
                    dataset_name, fmt.value, archive, lambda n: progress.advance(task, n)
                )
            )
    show_dataset_report(dataset, output)
    if dataset.get("status") == "invalid":
        raise typer.Exit(1)


@datasets_app.command("show")
def show_dataset(
    name: Annotated[str, typer.Argument(help="dataset name or id")],
    output: OutputOption = "table",
) -> None:
    """Show a dataset and its validation report."""
    show_dataset_report(call(lambda c: c.get_dataset(name)), output)


@datasets_app.command("delete")
def delete_dataset(name: Annotated[str, typer.Argument(help="dataset name or id")]) -> None:
    """Delete a dataset, and the files the platform stored for it (an upload's; a registered
    folder or bucket prefix is left as it is). Refused while a running job uses it."""
    dataset = call(lambda c: c.get_dataset(name))
    call(lambda c: c.delete_dataset(dataset["id"]))
    console.print(f"deleted dataset [bold]{dataset['name']}[/] ({dataset['id']})")


def _watch_and_exit(job_id: str) -> None:
    try:
        job = watch_job(job_id)
    except PlatformError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print(f"stopped watching; {job_id} keeps running (`trainyard watch {job_id}`)")
        raise typer.Exit(130) from None
    raise typer.Exit(0 if job["state"] == "SUCCEEDED" else 1)


def main() -> None:
    app()
