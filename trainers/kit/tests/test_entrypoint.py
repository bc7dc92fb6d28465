"""trainer_kit.entrypoint: the start every trainer's entrypoint shares."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import pytest

from trainer_kit.control import StopFlag
from trainer_kit.entrypoint import run_entrypoint
from trainer_kit.outcome import EXIT_CONTRACT
from trainer_kit.settings import ContractError, ContractSettings, read_settings

REQUIRED = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000",
    "TRAINYARD_CALLBACK_TOKEN": "s3cret",
    "TRAINYARD_MODEL": "m",
    "TRAINYARD_DATASET_URI": "file:///data/set",
    "TRAINYARD_OUTPUT_DIR": "/tmp/out",
    "TRAINYARD_EPOCHS": "3",
}


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_contract_error_is_one_line_on_stderr_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def load() -> ContractSettings:
        raise ContractError("TRAINYARD_EPOCHS: required but not set")

    def attempt(settings: ContractSettings, stop: StopFlag) -> int:
        raise AssertionError("no attempt without a valid environment")

    assert run_entrypoint(load, attempt) == EXIT_CONTRACT
    assert capsys.readouterr().err == "TRAINYARD_EPOCHS: required but not set\n"


def test_the_attempt_gets_the_settings_and_a_stop_flag_sigterm_sets() -> None:
    seen: list[tuple[str, bool]] = []

    def attempt(settings: ContractSettings, stop: StopFlag) -> int:
        os.kill(os.getpid(), signal.SIGTERM)  # caught: sets the flag, kills nothing
        seen.append((settings.job_id, stop.cancel_requested))
        with settings.callback_client() as client:
            assert client.refused is None
        return 7

    assert run_entrypoint(lambda: read_settings(ContractSettings, REQUIRED), attempt) == 7
    assert seen == [("job_1", True)]
    assert logging.getLogger("httpx").level == logging.WARNING
