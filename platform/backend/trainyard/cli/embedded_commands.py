"""`trainyard up` and `trainyard demo`: the embedded tier on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import Client, WorkflowFailureError

from trainyard.cli import platform_calls as cli
from trainyard.cli.embedded import EmbeddedConfig, running_platform
from trainyard.cli.embedded_services import EmbeddedStartError
from trainyard.cli.service_priority import ServicePriority
from trainyard.cli.settings import get_cli_settings
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard_workflows.contracts import workflow_id_for
from trainyard_workflows.job_states import TERMINAL_STATES

DataDirOption = Annotated[Path, typer.Option(help="state folder (git-ignored)")]
MlflowPortOption = Annotated[int, typer.Option(help="MLflow tracking server and UI port")]
ServicesOption = Annotated[
    ServicePriority,
    typer.Option(
        help="how Temporal, MLflow and the API yield the CPU to training: idle (the training "
        "first: a trainer on every core may slow the API's answers to a second where the kernel "
        "does not group tasks by session) or low (answers in tens of ms, the trainer ~1-2 % "
        "slower)",
    ),
]


def _config(
    data_dir: Path,
    api_port: int,
    temporal_port: int,
    ui_port: int,
    mlflow_port: int,
    services: ServicePriority,
) -> EmbeddedConfig:
    config = EmbeddedConfig(
        data_dir=data_dir.resolve(),
        api_port=api_port,
        temporal_port=temporal_port,
        temporal_ui_port=ui_port,
        mlflow_port=mlflow_port,
        service_priority=services,
    )
    # The CLI commands below talk to the platform this process started.
    os.environ["TRAINYARD_API_URL"] = config.api_url
    get_cli_settings.cache_clear()
    return config


def up(
    data_dir: DataDirOption = Path(".trainyard"),
    api_port: Annotated[int, typer.Option(help="backend port")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    temporal_ui_port: Annotated[int, typer.Option(help="Temporal web UI port")] = 8233,
    mlflow_port: MlflowPortOption = 5000,
    services: ServicesOption = ServicePriority.IDLE,
    stop_grace: Annotated[
        float,
        typer.Option(min=0, help="seconds a component has to stop after SIGTERM before SIGKILL"),
    ] = 15.0,
) -> None:
    """Run the embedded platform in the foreground until Ctrl-C or SIGTERM, restarting any
    component that dies."""
    config = _config(data_dir, api_port, temporal_port, temporal_ui_port, mlflow_port, services)
    config = dataclasses.replace(config, stop_grace_s=stop_grace)
    # The supervisor's restarts are warnings; the HTTP clients' INFO lines are noise here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        with running_platform(config) as platform:
            cli.console.print(
                f"Trainyard is up: API {config.api_url} (docs {config.api_url}/docs), "
                f"Temporal UI {config.temporal_ui_url}, MLflow UI {config.mlflow_url}, "
                f"logs in {platform.log_dir}. Ctrl-C stops."
            )
            try:
                while True:
                    time.sleep(1)  # the supervisor's thread restarts what dies
            except KeyboardInterrupt:
                cli.console.print("stopping…")
    except KeyboardInterrupt:
        cli.console.print("stopped while starting")
    except EmbeddedStartError as exc:
        cli.err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def demo(
    data_dir: DataDirOption = Path(".trainyard"),
    epochs: Annotated[int, typer.Option(help="epochs to train")] = 30,
    imgsz: Annotated[int, typer.Option(help="image size")] = 128,
    batch: Annotated[int, typer.Option(help="batch size")] = 16,
    api_port: Annotated[int, typer.Option(help="backend port")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    temporal_ui_port: Annotated[int, typer.Option(help="Temporal web UI port")] = 8233,
    mlflow_port: MlflowPortOption = 5000,
    services: ServicesOption = ServicePriority.IDLE,
    keep_running: Annotated[
        bool | None,
        typer.Option(
            "--keep-running/--exit",
            help="after the run, keep the platform up for the web UI until Ctrl-C "
            "(default: when run from a terminal)",
        ),
    ] = None,
) -> None:
    """Generate shapes, start the platform, train yolo11n on it live (in the terminal and in
    the web UI), then stop everything (or keep it up for the browser)."""
    config = _config(data_dir, api_port, temporal_port, temporal_ui_port, mlflow_port, services)
    # Big enough that mAP visibly rises within a minute of CPU training from random init.
    spec = ShapesSpec(train_images=64, val_images=16)
    dataset = make_shapes(config.data_dir / "datasets" / "shapes", spec)
    cli.console.print(
        f"[bold]1/3[/] dataset: {dataset.train_images} train + {dataset.val_images} val "
        f"synthetic shapes images in {dataset.root}"
    )
    cli.console.print("[bold]2/3[/] starting Temporal dev server, MLflow, API and worker…")
    try:
        with running_platform(config) as platform:
            cli.console.print(
                f"      [bold]web UI {config.api_url}[/] · API {config.api_url}/docs · "
                f"Temporal UI {config.temporal_ui_url} · MLflow UI {config.mlflow_url} · "
                f"logs {platform.log_dir}"
            )
            cli.register_dataset("shapes", dataset.uri)
            cli.console.print(f"[bold]3/3[/] training yolo11n on shapes for {epochs} epochs")
            job = cli.submit_job(
                {
                    "framework": "ultralytics",
                    "model": "yolo11n.yaml",
                    "dataset": "shapes",
                    "task": "detect",
                    "epochs": epochs,
                    "imgsz": imgsz,
                    "batch": batch,
                    "gpus": 0,
                }
            )
            cli.console.print(f"      watch it in the browser: {config.api_url}/jobs/{job['id']}")
            try:
                final = cli.watch_job(job["id"])
                # The job is terminal, but its workflow may still be closing the MLflow run
                # and registering the model; stopping the worker now would cut that short.
                _wait_for_workflow(config, job["id"])
            except KeyboardInterrupt:
                # The demo promises to stop what it started, the training included.
                cli.console.print(f"interrupted: cancelling {job['id']}…")
                _cancel_and_wait(job["id"])
                raise typer.Exit(130) from None
            if keep_running if keep_running is not None else sys.stdin.isatty():
                _serve_until_interrupted(config)
    except EmbeddedStartError as exc:
        cli.err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    raise typer.Exit(0 if final["state"] == "SUCCEEDED" else 1)


def _serve_until_interrupted(config: EmbeddedConfig) -> None:
    """Keep the platform up so the run can be explored (and more started from the chat)."""
    cli.console.print(
        f"The platform stays up: open [bold]{config.api_url}[/] to ask for more runs in the "
        "chat. Ctrl-C stops everything."
    )
    try:
        while True:
            time.sleep(1)  # the supervisor's thread restarts what dies
    except KeyboardInterrupt:
        cli.console.print("stopping…")


def _wait_for_workflow(config: EmbeddedConfig, job_id: str, timeout_s: float = 60.0) -> None:
    async def wait() -> None:
        client = await Client.connect(config.temporal_address)
        handle = client.get_workflow_handle(workflow_id_for(job_id))
        with contextlib.suppress(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout_s)

    try:
        asyncio.run(wait())
    except (TimeoutError, RuntimeError) as exc:
        cli.err_console.print(f"[yellow]warning:[/] the workflow of {job_id} did not close: {exc}")


def _cancel_and_wait(job_id: str, timeout_s: float = 30.0) -> None:
    with cli.platform_client() as client:
        client.cancel_job(job_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if client.get_job(job_id)["state"] in TERMINAL_STATES:
                return
            time.sleep(0.5)
