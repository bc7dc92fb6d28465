"""trainer_kit.control: why training must stop, checked at batch boundaries."""

from __future__ import annotations

import os
import signal

import pytest

from trainer_kit.callbacks import CallbackRefused
from trainer_kit.control import StopFlag, TrainingCancelled, install_sigterm_handler


def test_a_refusal_wins_over_a_failure_which_wins_over_a_cancel() -> None:
    stop = StopFlag()
    stop.check()
    assert not stop.stop_requested
    stop.request_cancel()
    with pytest.raises(TrainingCancelled):
        stop.check()
    stop.request_failure(OSError("upload failed"))
    stop.request_failure(OSError("a later one"))
    with pytest.raises(OSError, match="upload failed"):
        stop.check()
    refusal = CallbackRefused("heartbeat", 409)
    stop.request_refused(refusal)
    stop.request_refused(CallbackRefused("event", 401))
    with pytest.raises(CallbackRefused) as info:
        stop.check()
    assert info.value is refusal
    assert (stop.cancel_requested, stop.refused, str(stop.failure)) == (
        True,
        refusal,
        "upload failed",
    )


def test_sigterm_sets_the_flag_instead_of_killing_the_process() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    stop = StopFlag()
    try:
        install_sigterm_handler(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.cancel_requested
    finally:
        signal.signal(signal.SIGTERM, previous)
