"""The built-in planner: common phrasings of a training request, read with regular expressions.

"train yolo11n on my shapes dataset for 50 epochs at 640 on 2 GPUs" becomes a `PlanDraft`.
Deterministic and offline: it is the planner when no language model is configured and the
fallback when one fails. It only reads; `completion` adds defaults, limits and the dataset.
What it cannot read for sure (two models, "a few GPUs", a number without a unit, a word that
names no model) comes back as a question, never as a guess. The text is only ever matched
against these patterns: nothing in it is executed or formatted into anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainyard.chat.plan import (
    PLAN_NUMBER_MAX,
    ChatTurn,
    JobSummary,
    PlanDraft,
    PlanRequest,
    Question,
)
from trainyard.frameworks import known_model, model_examples

_NUMBER_WORDS = {
    "zero": 0, "no": 0, "one": 1, "a": 1, "an": 1, "single": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12,
    "sixteen": 16, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
}  # fmt: skip
_NUM = r"(?P<n>(?:-\s?)?\d[\d,_]*|" + "|".join(_NUMBER_WORDS) + r")"
# Where a number may start: not inside a word, and "-2" is read whole (then refused).
_AT = r"(?<![\w-])"
_VAGUE = (
    r"(?:some|a few|few|several|multiple|many|lots of|a couple of|a bunch of|more|fewer|enough)"
)

_EPOCHS = [
    re.compile(rf"{_AT}{_NUM}\s*(?:epochs?|eps?)\b"),
    re.compile(rf"\b(?:epochs?|e)\s*(?:=|:|of|to)?\s*{_NUM}\b(?!\s*(?:gpus?|px))"),
]
_IMGSZ = [
    re.compile(rf"\b(?:imgsz|image[\s_-]?size|img[\s_-]?size|resolution|size)\s*(?:=|:|of|to)?\s*{_NUM}"),
    re.compile(rf"(?:\bat|@)\s*{_NUM}\s*(?:px|pixels?|p)?\b(?!\s*(?:epochs?|gpus?))"),
    re.compile(rf"{_AT}{_NUM}\s*(?:px|pixels?)\b"),
    re.compile(r"\b(?P<n>\d{2,4})\s*x\s*(?P=n)\b"),
]  # fmt: skip
_BATCH = [
    re.compile(rf"\b(?:batch(?:[\s_-]?size)?|bs)\s*(?:=|:|of|to)?\s*{_NUM}"),
    re.compile(rf"{_AT}{_NUM}\s*(?:images?\s+)?per\s+batch\b"),
]
_GPUS = [
    re.compile(rf"{_AT}{_NUM}\s*(?:x\s*)?(?:nvidia\s+)?(?:gpus?|graphics cards?|cards)\b"),
    re.compile(rf"\bgpus?\s*(?:=|:|of|to)\s*{_NUM}"),
]
_ONE_GPU = re.compile(r"\b(?:on|with|using)\s+(?:a|one|the|1)?\s*gpu\b(?!s)")
_CPU = re.compile(
    r"\b(?:on|with|using)\s+(?:the\s+)?cpu\b|\bcpu[\s-]only\b"
    r"|\bwithout\s+(?:a\s+)?gpus?\b|\bno\s+gpus?\b"
)
_VAGUE_FIELD = {
    "epochs": re.compile(rf"\b{_VAGUE}\s+(?:more\s+)?epochs?\b|\bepochs?\s+(?:a\s+)?while\b"),
    "gpus": re.compile(rf"\b{_VAGUE}\s+gpus?\b|\ball (?:the )?gpus\b|\bevery gpu\b"),
    "batch": re.compile(r"\b(?:big|large|small|bigger|smaller|huge)\s+batch(?:es)?\b"),
    "imgsz": re.compile(
        r"\b(?:high|low|full|big|small)[\s-]res(?:olution)?\b|\b(?:big|small|large)\s+images\b"
    ),
}
_URI = re.compile(r"\b(?:s3|file)://[^\s,;\"'<>]+")
_DATASET = [
    re.compile(r"\bdataset\s*(?:=|:|named|called)\s*[\"']?(?P<name>[\w.-]+)"),
    re.compile(r"\b(?:on|using|with|use|from)\s+(?:my\s+|the\s+|our\s+)?[\"']?(?P<name>[\w.-]+)[\"']?\s+(?:dataset|data\b|images\b)"),
    re.compile(r"\b(?:on|using|with|use|from)\s+(?:my\s+|the\s+|our\s+)?dataset\s+[\"']?(?P<name>[\w.-]+)"),
    re.compile(r"\b(?:on|using|use)\s+(?:my\s+|the\s+|our\s+)?[\"']?(?P<name>[a-z][\w.-]*)"),
    re.compile(r"\b(?P<name>[a-z][\w.-]*)\s+(?:dataset|data set)\b"),
]  # fmt: skip
_MODEL_SLOT = [
    re.compile(r"\bmodel\s*(?:=|:|named|called)?\s*[\"']?(?P<word>[a-z0-9][\w.-]*)"),
    re.compile(
        r"\b(?:train|fine-?tune|finetune|run|retrain|use)\s+(?:an?\s+|the\s+|my\s+)?(?P<word>[a-z0-9][\w.-]*)"
    ),
]
_LIKE_LAST = re.compile(
    r"\b(?:like|same as|as in|copy of|based on|repeat)\s+(?:my\s+|the\s+)?(?:last|previous|latest)"
    r"(?:\s+(?:run|job|training|one|time))?\b|\b(?:again|rerun|re-run)\b"
)
# Words that may follow "train"/"on"/"use" without being a model or a dataset.
_STOP_WORDS = (
    "a an the my our it this that something anything model models dataset data images it's "
    "on for with at using use from to and or but please me us now again same like last "
    "previous gpu gpus cpu cpus epochs epoch batch size imgsz image resolution one two three "
    "four five six seven eight nine ten all some few several multiple many more less new "
    "another run job yolo network detector classifier"
)
_NOT_NAMES = frozenset(_STOP_WORDS.split())
# "high priority", "priority: low", "urgent": a level's name (trainyard/admission/priorities.py).
_PRIORITY = re.compile(
    r"\b(?P<a>low|normal|high|urgent)\s+priority\b"
    r"|\bpriority\s*(?:=|:|of|to)?\s*(?P<b>low|normal|high|urgent)\b"
    r"|\b(?P<c>urgent)(?:ly)?\b"
)
_WORD = re.compile(r"[a-z0-9][\w.-]*")
_LEFTOVER_NUMBER = re.compile(r"(?<![\w.:/=-])-?\d[\d,_]*(?![\w.])")


@dataclass
class _Reading:
    """What one message said: fields found, and questions about what it left unclear."""

    fields: dict[str, Any] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    like_last: bool = False


def parse(
    text: str, history: Sequence[ChatTurn] = (), recent: Sequence[JobSummary] = ()
) -> PlanDraft:
    """The draft the conversation asks for: earlier user turns first, `text` last (later
    values win, so "make it 20 epochs" refines the request before it)."""
    readings = [_read(turn.content) for turn in history if turn.role == "user"]
    readings.append(_read(text))
    fields: dict[str, Any] = {}
    open_questions: dict[str | None, Question] = {}
    based_on: JobSummary | None = None
    note: str | None = None
    for reading in readings:
        if reading.like_last:
            if recent:
                based_on = recent[0]
                fields = {**_request_of(based_on), **fields}
            else:
                open_questions["__last__"] = Question(
                    field=None,
                    question="You have no earlier run to start from. Which model and dataset?",
                )
        for name in reading.fields:
            open_questions.pop(name, None)
            if name == "dataset":
                open_questions.pop("__last__", None)
        fields.update(reading.fields)
        for question in reading.questions:
            open_questions[question.field] = question
    if based_on is not None:
        note = (
            f"Starting from your last run {based_on.id} ({based_on.model} on {based_on.dataset})."
        )
    questions = [q for key, q in open_questions.items() if key not in fields or key is None]
    return PlanDraft(
        request=PlanRequest(**fields),
        questions=questions,
        based_on_job=based_on.id if based_on is not None else None,
        note=note,
    )


def _request_of(job: JobSummary) -> dict[str, Any]:
    return {
        "framework": job.framework,
        "model": job.model,
        "dataset": job.dataset,
        "epochs": job.epochs,
        "imgsz": job.imgsz,
        "batch": job.batch,
        "gpus": job.gpus,
        "hyperparameters": dict(job.hyperparameters),
    }


def _read(message: str) -> _Reading:
    text = " ".join(message.lower().split())
    reading = _Reading(like_last=bool(_LIKE_LAST.search(text)))
    used: list[tuple[int, int]] = []

    uri = _URI.search(message)
    if uri:
        reading.fields["dataset"] = uri.group(0).rstrip(".")
        used.append(_span_in(text, uri.group(0).lower()))
    _read_cpu(text, reading, used)
    _read_numbers(text, reading, used)
    _read_one_gpu(text, reading, used)
    _read_priority(text, reading, used)
    for name, pattern in _VAGUE_FIELD.items():
        if name not in reading.fields and pattern.search(text):
            reading.questions.append(_vague_question(name))
    _read_model(text, reading, used)
    if "dataset" not in reading.fields:
        _read_dataset(text, reading, used)
    _read_leftover_numbers(text, reading, used)
    return reading


def _span_in(text: str, needle: str) -> tuple[int, int]:
    start = text.find(needle)
    return (start, start + len(needle)) if start >= 0 else (0, 0)


def _number(raw: str) -> int | None:
    raw = raw.replace(" ", "")
    if raw in _NUMBER_WORDS:
        return _NUMBER_WORDS[raw]
    cleaned = raw.replace(",", "").replace("_", "")
    try:
        return int(cleaned)
    except ValueError:
        return None


def _read_numbers(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    for name, patterns in (
        ("epochs", _EPOCHS),
        ("gpus", _GPUS),
        ("batch", _BATCH),
        ("imgsz", _IMGSZ),
    ):
        for pattern in patterns:
            for match in pattern.finditer(text):
                if _overlaps(match.span(), used):
                    continue
                value = _number(match.group("n"))
                if value is None:
                    continue
                used.append(match.span())
                if value < 0:
                    negative = f"{_LABEL[name]} cannot be negative ({value})."
                    reading.questions.append(Question(field=name, question=negative))
                elif value > PLAN_NUMBER_MAX:
                    huge = f"{_LABEL[name]} is far too large ({len(str(value))} digits)."
                    reading.questions.append(Question(field=name, question=huge))
                elif name in reading.fields and reading.fields[name] != value:
                    reading.questions.append(
                        Question(
                            field=name,
                            question=f"You gave two values for {_LABEL[name]} "
                            f"({reading.fields[name]} and {value}): which one?",
                            choices=[str(reading.fields[name]), str(value)],
                        )
                    )
                    del reading.fields[name]
                else:
                    reading.fields[name] = value


def _read_cpu(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    # First: "without a GPU" must not read as "a GPU".
    cpu = _CPU.search(text)
    if cpu:
        reading.fields["gpus"] = 0
        used.append(cpu.span())


def _read_one_gpu(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    if "gpus" in reading.fields:
        return
    one = _ONE_GPU.search(text)
    if one:
        reading.fields["gpus"] = 1
        used.append(one.span())


def _read_priority(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    match = _PRIORITY.search(text)
    if match:
        reading.fields["priority"] = match.group("a") or match.group("b") or match.group("c")
        used.append(match.span())


def _overlaps(span: tuple[int, int], used: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in used)


def _read_model(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    found: dict[str, tuple[str, tuple[int, int]]] = {}
    for match in _WORD.finditer(text):
        word = match.group(0).rstrip(".,")
        recognised = known_model(word)
        if recognised is not None and not _overlaps(match.span(), used):
            # As typed: completion turns `yolo11n` into `yolo11n.yaml` and says so.
            found.setdefault(word, (recognised[0], match.span()))
    if len(found) > 1:
        names = sorted(found)
        reading.questions.append(
            Question(
                field="model",
                question=f"You named {len(names)} models ({', '.join(names)}): which one?",
                choices=names,
            )
        )
        used.extend(span for _, span in found.values())
        return
    if found:
        [(model, (framework, span))] = found.items()
        reading.fields["model"] = model
        reading.fields["framework"] = framework
        used.append(span)
        return
    for pattern in _MODEL_SLOT:
        slot = pattern.search(text)
        if slot is None or _overlaps(slot.span("word"), used):
            continue
        word = slot.group("word").rstrip(".,")
        if word in _NOT_NAMES or word.isdigit():
            continue
        used.append(slot.span("word"))
        reading.questions.append(
            Question(
                field="model",
                question=f"I don't know a model called {word!r}. Which model should I train?",
                choices=list(model_examples()),
            )
        )
        return


def _read_dataset(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    for pattern in _DATASET:
        for match in pattern.finditer(text):
            name = match.group("name").rstrip(".,")
            if _overlaps(match.span("name"), used) or name in _NOT_NAMES:
                continue
            if name.isdigit() or known_model(name) is not None:
                continue
            reading.fields["dataset"] = name
            used.append(match.span("name"))
            return


def _read_leftover_numbers(text: str, reading: _Reading, used: list[tuple[int, int]]) -> None:
    for match in _LEFTOVER_NUMBER.finditer(text):
        if _overlaps(match.span(), used):
            continue
        number = match.group(0)
        reading.questions.append(
            Question(
                field=None,
                question=f"What is {number} for: epochs, image size, batch size or GPUs?",
                choices=[f"{number} epochs", f"image size {number}", f"batch {number}",
                         f"{number} GPUs"],
            )
        )  # fmt: skip
        used.append(match.span())


_LABEL = {"epochs": "epochs", "imgsz": "the image size", "batch": "the batch size", "gpus": "GPUs"}


def _vague_question(name: str) -> Question:
    asks = {
        "epochs": "How many epochs exactly?",
        "gpus": "How many GPUs exactly? (0 trains on the CPU)",
        "batch": "Which batch size exactly?",
        "imgsz": "Which image size exactly (a multiple of 32, e.g. 320 or 640)?",
    }
    return Question(field=name, question=asks[name])
