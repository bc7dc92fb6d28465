"""The chat answers "why is my run waiting?" from the queue: the newest queued job, its place
and its reason, with no plan card; other messages are still planned."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trainyard.chat.queue_question import is_queue_question

from ..admission.test_admission_queue import ONE_CPU_SLOT, _ask, _report, _validated
from .test_chat_api import say


@pytest.mark.parametrize(
    "message",
    [
        "why is my run waiting?",
        "Why is my job still queued",
        "why hasn't my training started yet?",
        "when will my run start?",
        "where is my job in the queue?",
        "what is it waiting for?",
    ],
)
def test_close_variants_of_the_question_are_recognised(message: str) -> None:
    assert is_queue_question(message)


@pytest.mark.parametrize(
    "message",
    [
        "train yolo11n on shapes for 5 epochs",
        "train yolo11n on shapes and start it when the GPU is free",
        "make it 20 epochs",
        "like my last run but on 2 GPUs",
    ],
)
def test_training_requests_are_not_taken_for_it(message: str) -> None:
    assert not is_queue_question(message)


async def test_why_is_my_run_waiting_names_the_newest_queued_job_its_place_and_reason(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, ONE_CPU_SLOT)
    assert (await _ask(api, await _validated(api, job_body)))["admitted"]
    first = await _validated(api, job_body)
    assert (await _ask(api, first))["position"] == 1
    second = await _validated(api, job_body)
    assert (await _ask(api, second))["position"] == 2

    reply = await say(api, "why is my run waiting?")

    assert reply["plan"] is None
    assert reply["text"].splitlines() == [
        f"Your run {second} (yolo11n.yaml on {job_body['dataset']}) is #2 in the queue: "
        "waiting for a CPU slot: 0 of 1 free, 1 run ahead in the queue.",
        "There is no estimate of when it starts yet.",
    ]
    stored = (await api.get(f"/v1/chat/{reply['conversation_id']}")).json()
    assert [(m["role"], m["plan"]) for m in stored["messages"]] == [
        ("user", None),
        ("assistant", None),
    ]


async def test_with_nothing_queued_it_says_so_and_names_the_newest_runs_state(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    assert (await say(api, "why is my job not starting?"))["text"] == (
        "None of your runs is waiting: this project has no runs yet."
    )
    job_id = await _validated(api, job_body)

    reply = await say(api, "when will my run start?")

    assert reply["text"] == (
        f"None of your runs is waiting in the queue: the newest, {job_id} "
        f"(yolo11n.yaml on {job_body['dataset']}), is VALIDATING."
    )
