"""telemetry/log_lines.py: a trainer's JSON log lines on the job's page read as console lines."""

from __future__ import annotations

import json

from trainyard_workflows.telemetry.log_lines import readable_lines

# A line as trainer_kit.log_format.JsonLines writes it.
TRAINER_LINE = json.dumps(
    {
        "timestamp": "2026-12-07T02:42:21.277326+00:00",
        "level": "error",
        "logger": "trainyard.trainer.run",
        "message": "the step failed",
        "service": "trainyard-trainer",
        "job_id": "job_1",
        "attempt": 2,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "exception": 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad',
    }
)


def test_a_json_line_reads_as_the_console_format_with_its_traceback() -> None:
    assert readable_lines([TRAINER_LINE]) == [
        "2026-12-07T02:42:21.277326+00:00 trainyard-trainer ERROR trainyard.trainer.run: "
        "the step failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: bad",
    ]


def test_other_lines_stay_as_they_are() -> None:
    lines = [
        "Epoch 1/3: 100%|██████████| 4/4",
        "{not json",
        '{"no": "message"}',
        "[1, 2]",
        "",
    ]
    assert readable_lines(lines) == lines
