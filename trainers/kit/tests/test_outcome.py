"""trainer_kit.outcome: the failure reason, the artifacts and the done callback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.outcome import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    collect_artifacts,
    describe,
    report_failure,
    report_success,
    send_done,
)
from trainer_kit.publishing import RunPublisher
from trainer_kit.storage import S3Storage
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.s3 import S3Endpoint

FILES = {"weights": "weights/best.pt", "last": "weights/last.pt", "results": "results.csv"}


def test_collect_artifacts_lists_existing_files_only(tmp_path: Path) -> None:
    assert collect_artifacts(tmp_path / "nope", FILES) == {}
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"x")

    assert collect_artifacts(tmp_path, FILES) == {
        "last": str(tmp_path / "weights" / "last.pt"),
        "run_dir": str(tmp_path),
    }


def test_collect_artifacts_lists_what_was_published(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.bucket(f"b-{uuid.uuid4().hex[:12]}")
    storage = S3Storage(s3.client(), attempts=1)
    publisher = RunPublisher(lambda: storage, f"s3://{bucket}/jobs/j", tmp_path)
    (tmp_path / ".trainer").mkdir()
    run = tmp_path / "run"
    assert collect_artifacts(run, FILES, publisher) == {}
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"x")
    (run / "results.csv").write_text("epoch\n")
    publisher.publish(run / "weights" / "last.pt")

    assert collect_artifacts(run, FILES, publisher) == {
        "last": f"s3://{bucket}/jobs/j/run/weights/last.pt",
        "run_dir": f"s3://{bucket}/jobs/j/run",
    }


def test_describe_is_one_line() -> None:
    assert describe(RuntimeError("Dataset error ❌\n  missing path")) == (
        "RuntimeError: Dataset error ❌ missing path"
    )
    assert describe(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert len(describe(ValueError("x" * 5000))) == 2000


def test_done_is_sent_once_and_never_after_a_refusal(callback_server: CallbackServer) -> None:
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        assert send_done(client, "succeeded", reason=None, metrics={"m": 1.0}, artifacts={})
    assert [c.body["status"] for c in callback_server.of("done")] == ["succeeded"]

    callback_server.responder = lambda kind, body: 409
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        assert not send_done(client, "failed", reason="x", metrics={}, artifacts={})
        assert client.refused is not None
        assert not send_done(client, "failed", reason="x", metrics={}, artifacts={})
    assert len(callback_server.of("done")) == 2  # the refused one; nothing after it
    assert send_done(None, "failed", reason="x", metrics={}, artifacts={})  # a silent rank


def _stopped(*, cancel: bool = False, failure: Exception | None = None) -> StopFlag:
    stop = StopFlag()
    if cancel:
        stop.request_cancel()
    if failure is not None:
        stop.request_failure(failure)
    return stop


@pytest.mark.parametrize(
    ("exc", "stop", "expected"),
    [
        (ValueError("bad\nvalue"), _stopped(), ("failed", "ValueError: bad value", EXIT_FAILED)),
        (
            RuntimeError("teardown"),
            _stopped(failure=OSError("upload failed")),
            ("failed", "OSError: upload failed", EXIT_FAILED),
        ),
        (TrainingCancelled(), _stopped(), ("cancelled", "stopped by SIGTERM", EXIT_CANCELLED)),
        (RuntimeError("x"), _stopped(cancel=True), ("cancelled", "stopped by SIGTERM", 143)),
    ],
)
def test_a_failed_or_cancelled_attempt_sends_done_with_its_reason(
    callback_server: CallbackServer,
    exc: BaseException,
    stop: StopFlag,
    expected: tuple[str, str, int],
) -> None:
    status, reason, code = expected
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        exit_code = report_failure(
            client, exc, stop, metrics={"m": 1.0}, artifacts=lambda: {"a": "b"}
        )
    assert exit_code == code
    [done] = [c.body for c in callback_server.of("done")]
    assert (done["status"], done["reason"]) == (status, reason)
    assert (done["metrics"], done["artifacts"]) == ({"m": 1.0}, {"a": "b"})


@pytest.mark.parametrize(("cancel", "code"), [(False, EXIT_FAILED), (True, EXIT_CANCELLED)])
def test_after_a_refusal_nothing_more_is_sent(
    callback_server: CallbackServer, cancel: bool, code: int
) -> None:
    refusal = CallbackRefused("heartbeat", 409)
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        assert report_failure(
            client, refusal, _stopped(cancel=cancel), metrics={}, artifacts=dict
        ) == (code)
    assert callback_server.snapshot() == []


def test_success_is_exit_0_once_done_is_delivered(callback_server: CallbackServer) -> None:
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        assert report_success(client, metrics={"m": 1.0}, artifacts={}) == EXIT_OK
    callback_server.responder = lambda kind, body: 422
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        assert report_success(client, metrics={}, artifacts={}) == EXIT_FAILED
