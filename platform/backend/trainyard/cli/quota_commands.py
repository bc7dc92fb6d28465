"""`trainyard projects quota`: a project's quota and usage; platform admins set it with
`--set gpus=2 runs=4 gpu-hours=100 max-priority=high` (`none` lifts a limit)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from trainyard.admission.priorities import PRIORITY_NAMES
from trainyard.cli.client import PlatformClient, PlatformError
from trainyard.cli.platform_calls import console, fail, platform_client

projects_app = typer.Typer(help="Your projects' quotas.", no_args_is_help=True)

# What `--set` names -> the API's field; each value parser raises ValueError with why.
_FIELDS = {
    "gpus": "gpus",
    "runs": "runs",
    "gpu-hours": "gpu_hours_per_month",
    "max-priority": "max_priority",
}


class BadQuotaSetting(ValueError):
    pass


def merged_quota(current: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """The quota to PUT: `current` with each `name=value` of `settings` applied (the rest kept)."""
    quota = dict(current)
    for item in settings:
        name, sep, value = item.partition("=")
        field = _FIELDS.get(name.strip())
        if not sep or field is None:
            raise BadQuotaSetting(
                f"{item!r}: expected name=value with name one of {', '.join(_FIELDS)}"
            )
        quota[field] = _value(field, value.strip(), item)
    return quota


def _value(field: str, value: str, item: str) -> Any:
    if field == "max_priority":
        if value not in PRIORITY_NAMES:
            raise BadQuotaSetting(f"{item!r}: max-priority is one of {', '.join(PRIORITY_NAMES)}")
        return value
    if value.lower() in ("none", "unlimited", ""):
        return None
    try:
        return float(value) if field == "gpu_hours_per_month" else int(value)
    except ValueError:
        raise BadQuotaSetting(f"{item!r}: a number, or none to lift the limit") from None


def quota(
    settings: Annotated[
        list[str] | None,
        typer.Argument(help="with --set: gpus=N runs=N gpu-hours=H max-priority=LEVEL (or none)"),
    ] = None,
    set_: Annotated[bool, typer.Option("--set", help="change the quota (platform admins)")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """The project's quota and what it uses now (the --project one, else your default)."""
    if settings and not set_:
        fail("to change the quota, put --set before the settings")
    try:
        with platform_client() as client:
            slug = _project(client)
            read: dict[str, Any] = client.get_quota(slug)
            if set_:
                read = client.set_quota(slug, merged_quota(read["quota"], settings or []))
    except (PlatformError, BadQuotaSetting) as exc:
        fail(str(exc))
    if output == "json":
        console.print_json(json.dumps(read))
        return
    _print(read)


def _project(client: PlatformClient) -> str:
    if client.caller.project is not None:
        return client.caller.project
    default: str | None = client.me().get("default_project")
    if default is None:
        raise PlatformError("you are in no project: name one with --project")
    return default


def _print(read: dict[str, Any]) -> None:
    quota, usage, left = read["quota"], read["usage"], read["remaining"]
    table = Table("", "used", "quota", "left", title=f"project {read['project']}")
    rows = (("GPUs", "gpus", "gpus"), ("runs", "runs", "runs"))
    for label, used, limit in rows:
        table.add_row(label, str(usage[used]), _limit(quota[limit]), _limit(left[limit]))
    table.add_row(
        "GPU-hours this month",
        f"{usage['gpu_hours_this_month']:g}",
        _limit(quota["gpu_hours_per_month"]),
        _limit(left["gpu_hours_this_month"]),
    )
    console.print(table)
    console.print(f"members may ask for priority up to {quota['max_priority']}")
    if read["budget_exhausted"]:
        console.print("[yellow]the month's GPU-hours are used up:[/] GPU jobs wait")


def _limit(value: float | None) -> str:
    return "no limit" if value is None else f"{value:g}"


projects_app.command("quota")(quota)
