"""Turns a job's events into a live terminal view: state, epoch/total, losses, mAP50, ETA."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from trainyard_workflows.event_types import QUEUE
from trainyard_workflows.job_states import TERMINAL_STATES, JobState

# Shown through the progress bar already; a line each would drown the epoch lines.
_QUIET_EVENTS = frozenset({"checkpoint_saved"})
_STATE_STYLE: dict[str, str] = {
    JobState.SUCCEEDED: "bold green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "bold yellow",
}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics worth a glance: losses and mAP50 (mAP50-95 as well when present)."""
    picked: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(value, int | float):
            continue
        if key.endswith("_loss") or "mAP50" in key or key.startswith("metrics/accuracy"):
            picked[key] = float(value)
    return picked


@dataclass
class JobProgress:
    job_id: str
    state: str = "PENDING"
    epoch: int = 0
    epochs: int | None = None
    eta_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    last_seq: int = 0
    # Its place in the queue while QUEUED (from `queue` events); None once it leaves the queue.
    queue_position: int | None = None

    def apply(self, event: dict[str, Any]) -> str | None:
        """Fold one event in; return a line worth printing above the live view, if any."""
        self.last_seq = max(self.last_seq, int(event.get("seq", 0)))
        kind = event.get("type")
        data: dict[str, Any] = event.get("data") or {}
        if kind == "state":
            self.state = str(data.get("to", self.state))
            if self.state != JobState.QUEUED:
                self.queue_position = None
            if data.get("reason"):
                self.reason = str(data["reason"])
            suffix = f": {data['reason']}" if data.get("reason") else ""
            return f"state → {self.state}{suffix}"
        if kind == "heartbeat":
            epoch = int(data.get("epoch", 0))
            if epoch < self.epoch:
                return None  # a late or repeated heartbeat never moves the view back
            new_epoch = epoch > self.epoch
            self.epoch = epoch
            self.epochs = int(data.get("epochs") or self.epochs or 0) or None
            self.eta_s = data.get("eta_s")
            if data.get("metrics"):
                self.metrics = headline_metrics(data["metrics"])
            if new_epoch and self.metrics:
                return (
                    f"epoch {epoch}/{self.epochs or '?'}  {metrics_line(self.metrics).plain}  "
                    f"ETA {format_duration(self.eta_s)}"
                )
            return None
        if kind in _QUIET_EVENTS:
            return None
        if kind == QUEUE:
            self.queue_position = int(data.get("position") or 0) or None
            return queue_line(data)
        if kind == "done":
            if data.get("metrics"):
                self.metrics = headline_metrics(data["metrics"])
            self.artifacts = {k: str(v) for k, v in (data.get("artifacts") or {}).items()}
            self.eta_s = 0
            # The backend's message: it tells a finished trainer from an interrupted one.
            return str(event.get("message") or f"trainer finished: {data.get('status')}")
        message = event.get("message") or ""
        return f"{kind}: {message}" if message else str(kind)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def render(self) -> RenderableType:
        bar = Progress(
            TextColumn(f"[bold]{self.job_id}[/]"),
            TextColumn(self.state_label(), style=_STATE_STYLE.get(self.state, "cyan")),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs  ETA " + format_duration(self.eta_s)),
        )
        bar.add_task("train", total=self.epochs or None, completed=self.epoch)
        return Group(bar, metrics_line(self.metrics))

    def state_label(self) -> str:
        if self.state == JobState.QUEUED and self.queue_position:
            return f"{self.state} #{self.queue_position}"
        return self.state


def queue_line(data: dict[str, Any]) -> str:
    """A `queue` event for people: `queued: #2 — waiting for a CPU slot: 0 of 1 free`."""
    position = data.get("position")
    # Kueue may hold a job without saying where (its visibility API not served).
    unknown = "place unknown" if data.get("hold") == "kueue" else "next"
    place = f"#{position}" if position else unknown
    return f"queued: {place} — {data.get('reason') or 'waiting for admission'}"


def metrics_line(metrics: dict[str, float]) -> Text:
    """`train box 1.23 cls 0.45 · val box 1.30 … · mAP50 0.412 mAP50-95 0.201` on one line."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.rpartition("/")
        group = prefix if prefix in {"train", "val"} else "metrics"
        label = name.removesuffix("_loss").replace("(B)", "")
        groups.setdefault(group, []).append((label, value))
    line = Text()
    for group in ("train", "val", "metrics"):
        if group not in groups:
            continue
        if line:
            line.append(" · ", style="dim")
        if group != "metrics":
            line.append(f"{group} loss ", style="dim")
        line.append("  ".join(f"{label} {value:.3f}" for label, value in groups[group]))
    return line
