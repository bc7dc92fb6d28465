"""The environment training workers get: no secret, whether a trainer starts them itself
(`worker_env`) or a framework does with the inherited environment (`withheld_from_environ`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainer_kit.testing.processes import SpawnedEnvirons
from trainer_kit.workers import (
    is_secret,
    secrets_in,
    withheld_from_environ,
    worker_env,
)

SECRETS = {
    "TRAINYARD_CALLBACK_TOKEN": "tok",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "s3-secret",
    "AWS_SESSION_TOKEN": "session",
    "HF_TOKEN": "hf",
    "TRAINYARD_INTERNAL_TOKEN": "internal",
    "TRAINYARD_S3_SECRET_ACCESS_KEY": "platform-side",
}
PLAIN = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TOKENIZERS_PARALLELISM": "false",
    "PATH": "/usr/bin",
}


def test_secrets_are_known_by_name_and_by_shape() -> None:
    assert all(is_secret(name) for name in SECRETS)
    assert not any(is_secret(name) for name in PLAIN)
    assert secrets_in({**SECRETS, **PLAIN}) == SECRETS


def test_worker_env_drops_every_secret_and_adds_the_callers_variables() -> None:
    env = worker_env({**SECRETS, **PLAIN}, WORKER="1")
    assert env == {**PLAIN, "WORKER": "1"}


def test_a_process_started_inside_withheld_from_environ_gets_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    code = "import time; time.sleep(0.5)"

    with SpawnedEnvirons() as watch, withheld_from_environ():
        subprocess.run([sys.executable, "-c", code, "withheld-child"], check=True)

    [child] = watch.running("withheld-child")
    assert child["PATH"] == os.environ["PATH"], "the rest of the environment is kept"
    assert not secrets_in(child), "a spawned process was given a secret"
    assert secrets_in(dict(os.environ)) == SECRETS, "the secrets are back afterwards"


def test_workers_keep_the_trace_context_but_not_the_trace_exporter() -> None:
    """A worker's log lines name the trace; only the reporting process exports spans, and an
    exporter's headers (an API key, often) are a secret."""
    trace_context = {"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    exporter = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer key",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=key",
    }

    assert worker_env({**trace_context, **exporter, **PLAIN}) == {**trace_context, **PLAIN}
    assert set(secrets_in(exporter)) == {
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    }
