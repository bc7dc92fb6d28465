"""The assistant's words for a plan: built from the plan's fields, never from the prompt."""

from __future__ import annotations

from trainyard.chat.plan import TrainingPlan


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def reply_text(plan: TrainingPlan, note: str | None = None) -> str:
    lines = [note] if note else []
    if not plan.ready:
        lines.append("Before I can start, I need to know:")
        lines += [f"• {question.question}" for question in plan.questions]
        return "\n".join(lines)
    request = plan.request
    on = f"{request.gpus} GPU{'s' if request.gpus != 1 else ''}" if request.gpus else "the CPU"
    dataset = request.dataset
    if plan.dataset is not None:
        facts = [plan.dataset.status]
        if plan.dataset.classes:
            facts.append(f"{plan.dataset.classes} classes")
        if plan.dataset.images:
            facts.append(f"{plan.dataset.images} images")
        dataset = f"{dataset} ({', '.join(facts)})"
    lines.append(
        f"Here is the plan: train {request.model} ({request.framework}) on {dataset} for "
        f"{request.epochs} epochs at {request.imgsz} px, batch {request.batch}, on {on}."
    )
    if plan.estimate is not None:
        lines.append(
            f"It should take about {format_duration(plan.estimate.seconds)} "
            f"({plan.estimate.basis})."
        )
    if plan.assumed:
        assumed = ", ".join(f"{a.field} {a.value}" for a in plan.assumed)
        lines.append(f"I assumed: {assumed}. Change anything on the card, then press Start.")
    else:
        lines.append("Press Start to run it.")
    return "\n".join(lines)
