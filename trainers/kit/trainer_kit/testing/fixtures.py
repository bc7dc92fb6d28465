"""The pytest fixtures of trainer_kit.testing (load with ``-p trainer_kit.testing.fixtures``):
``callback_server``, a fresh recording callback server per test, ``otlp_receiver``, a fresh
OTLP/HTTP trace receiver per test, and ``s3``, one real S3 endpoint (moto in server mode) per
session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainer_kit.testing.callback_server import CallbackServer, serve_callbacks
from trainer_kit.testing.otlp_receiver import OtlpReceiver, serve_otlp
from trainer_kit.testing.s3 import S3Endpoint, serve_s3


@pytest.fixture
def callback_server() -> Iterator[CallbackServer]:
    with serve_callbacks() as state:
        yield state


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with serve_otlp() as state:
        yield state


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    with serve_s3() as endpoint:
        yield endpoint
