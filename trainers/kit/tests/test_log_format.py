"""trainer_kit.log_format: the trainer's stderr lines, readable or JSON (TRAINYARD_LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from trainer_kit.log_format import JsonLines, inherited_trace
from trainer_kit.settings import ContractError, ContractSettings, read_settings

REQUIRED = {
    "TRAINYARD_JOB_ID": "job_logs",
    "TRAINYARD_ATTEMPT": "2",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:9",
    "TRAINYARD_CALLBACK_TOKEN": "the-callback-token-of-this-test",
    "TRAINYARD_MODEL": "m",
    "TRAINYARD_DATASET_URI": "file:///data/set",
    "TRAINYARD_OUTPUT_DIR": "/tmp/out",
    "TRAINYARD_EPOCHS": "1",
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"

# A trainer as small as can be: the kit's entrypoint, one log line, one exception.
_TRAINER = """
import logging, sys
from trainer_kit.entrypoint import run_entrypoint
from trainer_kit.settings import ContractSettings, read_settings

def attempt(settings, stop):
    log = logging.getLogger("trainyard.trainer.run")
    log.info("epoch %d of %d", 1, settings.epochs)
    try:
        raise ValueError("bad batch")
    except ValueError:
        log.exception("the step failed")
    return 0

sys.exit(run_entrypoint(lambda: read_settings(ContractSettings), attempt))
"""


def _trainer_stderr(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_", "TRACE"))}
    done = subprocess.run(
        [sys.executable, "-c", _TRAINER],
        env={**base, **REQUIRED, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.splitlines()


def test_json_lines_carry_the_job_the_attempt_and_the_inherited_trace() -> None:
    lines = _trainer_stderr(TRAINYARD_LOG_FORMAT="json", TRACEPARENT=TRACEPARENT)

    first, failed = (json.loads(line) for line in lines)  # one JSON object per line
    assert first["message"] == "epoch 1 of 1"
    assert first["level"] == "info"
    assert first["logger"] == "trainyard.trainer.run"
    assert first["service"] == "trainyard-trainer"
    assert (first["job_id"], first["attempt"]) == ("job_logs", 2)
    assert (first["trace_id"], first["span_id"]) == (TRACE_ID, SPAN_ID)
    assert first["timestamp"].endswith("+00:00")
    assert failed["level"] == "error"
    assert "ValueError: bad batch" in failed["exception"]
    assert REQUIRED["TRAINYARD_CALLBACK_TOKEN"] not in "\n".join(lines)


def test_without_a_traceparent_json_lines_have_no_trace_fields() -> None:
    record = json.loads(_trainer_stderr(TRAINYARD_LOG_FORMAT="json")[0])
    assert "trace_id" not in record
    assert "span_id" not in record


def test_console_lines_stay_as_they_were() -> None:
    lines = _trainer_stderr()
    assert "trainyard-trainer INFO trainyard.trainer.run: epoch 1 of 1" in lines[0]
    assert not lines[0].startswith("{")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE_ID}-{SPAN_ID}",
        f"00-{'0' * 32}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
    ],
)
def test_a_missing_or_malformed_traceparent_gives_no_trace(value: str | None) -> None:
    assert inherited_trace(value) is None


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("trainyard.trainer.run", logging.INFO, __file__, 1, message, (), None)


def test_a_recording_span_wins_over_the_inherited_trace() -> None:
    formatter = JsonLines("job_logs", 2, (TRACE_ID, SPAN_ID))
    with TracerProvider().get_tracer("test").start_as_current_span("trainer.attempt") as span:
        line: dict[str, Any] = json.loads(formatter.format(_record("inside")))
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_a_message_with_newlines_and_quotes_stays_one_line() -> None:
    formatter = JsonLines("job_logs", 2, None)
    text = formatter.format(_record('two\nlines "quoted"'))
    assert "\n" not in text
    assert json.loads(text)["message"] == 'two\nlines "quoted"'


def test_an_unknown_log_format_is_a_contract_error_naming_the_variable() -> None:
    with pytest.raises(ContractError, match=r"^TRAINYARD_LOG_FORMAT: must be console or json"):
        read_settings(ContractSettings, {**REQUIRED, "TRAINYARD_LOG_FORMAT": "xml"})
