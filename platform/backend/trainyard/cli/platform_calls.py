"""What the CLI's commands do against the platform, shared by the job and dataset commands
(cli/app.py) and the embedded ones (cli/embedded_commands.py): the consoles, calls that end
the command with a clear error, submitting, registering a dataset, watching a job live."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from trainyard.cli.caller import current_caller
from trainyard.cli.client import PlatformClient, PlatformError
from trainyard.cli.progress_view import JobProgress, format_duration
from trainyard.cli.settings import get_cli_settings
from trainyard.cli.stream import follow_events

console = Console()
err_console = Console(stderr=True)


def platform_client() -> PlatformClient:
    return PlatformClient(current_caller(), get_cli_settings().request_timeout_s)


def stream_url() -> str:
    return get_cli_settings().stream_url


def submit_job(body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    job: dict[str, Any] = call(lambda c: c.create_job(body, idempotency_key))
    console.print(f"submitted [bold]{job['id']}[/] ({job['state']})")
    return job


def register_dataset(name: str, uri: str, fmt: str = "yolo") -> dict[str, Any]:
    """Register `uri` as `name`, or reuse the registration when it already points there."""
    with platform_client() as client:
        try:
            existing: dict[str, Any] = client.get_dataset(name)
        except PlatformError:
            existing = {}
        if existing.get("uri") == uri:
            return existing
        if existing:
            fail(f"dataset {name!r} already exists and points to {existing['uri']}")
        try:
            created: dict[str, Any] = client.register_dataset(name, uri, fmt)
        except PlatformError as exc:
            fail(str(exc))
        return created


def watch_job(job_id: str) -> dict[str, Any]:
    """Show the live view until the job ends; return the final job."""
    view = JobProgress(job_id)
    with Live(view.render(), console=console, refresh_per_second=4) as live:
        for event in follow_events(
            stream_url(),
            job_id,
            caller=current_caller(),
            on_reconnect=lambda msg: live.console.print(f"[dim]{msg}"),
        ):
            line = view.apply(event)
            if line:
                live.console.print(f"[dim]#{event['seq']}[/] {line}")
            live.update(view.render())
    job: dict[str, Any] = call(lambda c: c.get_job(job_id))
    print_summary(job)
    return job


def print_summary(job: dict[str, Any]) -> None:
    result = job.get("result") or {}
    state = job["state"]
    style = {"SUCCEEDED": "green", "FAILED": "red"}.get(state, "yellow")
    console.print(f"\njob [bold]{job['id']}[/] [{style}]{state}[/]")
    if job.get("reason"):
        console.print(f"reason: {job['reason']}")
    metrics = result.get("metrics") or {}
    if metrics:
        table = Table("metric", "value")
        for key, value in metrics.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(table)
    artifacts = result.get("artifacts") or {}
    if artifacts.get("weights"):
        # soft_wrap: a path broken over two lines cannot be copied.
        console.print(f"weights: {artifacts['weights']}", soft_wrap=True)
    progress = job.get("progress") or {}
    if progress.get("elapsed_s") is not None:
        console.print(f"training time: {format_duration(progress['elapsed_s'])}")
    tracking = job.get("tracking") or {}
    if tracking.get("mlflow_run_url"):
        console.print(f"MLflow run: {tracking['mlflow_run_url']}", soft_wrap=True)
    if job.get("trace_id"):
        # The job's OpenTelemetry trace (docs/operations.md, "Traces"): find it in the collector.
        console.print(f"trace: {job['trace_id']}")


def call(action: Any) -> Any:
    try:
        with platform_client() as client:
            return action(client)
    except PlatformError as exc:
        fail(str(exc))


def fail(message: str) -> Any:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)
