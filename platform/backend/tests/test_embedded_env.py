"""The environment of each embedded-tier process comes from an allow-list (cli/embedded_env.py):
a secret of the shell or of the platform reaches only the processes that use it."""

from __future__ import annotations

import pytest

from trainyard.cli.embedded_env import api_env, worker_env
from trainyard.cli.embedded_services import mlflow_server_env, temporal_server_env
from trainyard.cli.trace_store import trace_export_env, user_chose_trace_export

SHELL = {
    "PATH": "/usr/bin",
    "HOME": "/home/ada",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "UTC",
    # What a user may have exported for anything else, and the platform's own settings.
    "OPENAI_API_KEY": "sk-shell",
    "GITHUB_TOKEN": "ghp-shell",
    "AWS_SECRET_ACCESS_KEY": "aws-shell",
    "AWS_ACCESS_KEY_ID": "AKIA-shell",
    "MLFLOW_TRACKING_TOKEN": "mlflow-shell",
    "TRAINYARD_SESSION_SECRET": "session-shell",
    "TRAINYARD_OIDC_CLIENT_SECRET": "oidc-shell",
    "TRAINYARD_LLM_API_KEY": "llm-shell",
    "TRAINYARD_S3_SECRET_ACCESS_KEY": "s3-shell",
    "TRAINYARD_CALLBACK_PREVIOUS_SECRETS": '{"k0": "old-callback-secret"}',
    "TRAINYARD_WATCH_POLL_S": "2",
}
PLATFORM = {
    "TRAINYARD_INTERNAL_TOKEN": "internal-token",
    "TRAINYARD_CALLBACK_SECRET": "callback-secret",
    "TRAINYARD_DATA_DIR": "/data",
    "TRAINYARD_API_PORT": "8000",
    "TRAINYARD_HEARTBEAT_TIMEOUT_S": "60",
}
SECRETS = {
    value
    for name, value in {**SHELL, **PLATFORM}.items()
    if any(word in name for word in ("KEY", "TOKEN", "SECRET"))
}
BASE = {
    "PATH": "/usr/bin",
    "HOME": "/home/ada",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "UTC",
}


def test_the_mlflow_server_gets_the_base_variables_and_no_secret() -> None:
    env = mlflow_server_env(SHELL)
    assert env == {**BASE, "PYTHONUNBUFFERED": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    assert not SECRETS & set(env.values())


def test_the_temporal_server_gets_the_base_variables_and_one_go_processor() -> None:
    assert temporal_server_env(SHELL) == {**BASE, "GOMAXPROCS": "1"}
    assert temporal_server_env({**SHELL, "GOMAXPROCS": "4"})["GOMAXPROCS"] == "4"


def test_the_worker_gets_its_settings_and_storage_keys_but_not_the_signing_secret() -> None:
    env = worker_env(SHELL, PLATFORM)
    assert env["TRAINYARD_INTERNAL_TOKEN"] == "internal-token"
    assert env["TRAINYARD_DATA_DIR"] == "/data"
    assert env["TRAINYARD_WATCH_POLL_S"] == "2"
    assert env["TRAINYARD_S3_SECRET_ACCESS_KEY"] == "s3-shell"  # the worker reads datasets
    assert env["AWS_SECRET_ACCESS_KEY"] == "aws-shell"
    assert env["MLFLOW_TRACKING_TOKEN"] == "mlflow-shell"  # the worker is MLflow's client
    for absent in (
        "TRAINYARD_CALLBACK_SECRET",
        "TRAINYARD_CALLBACK_PREVIOUS_SECRETS",
        "TRAINYARD_SESSION_SECRET",
        "TRAINYARD_OIDC_CLIENT_SECRET",
        "TRAINYARD_LLM_API_KEY",
        "TRAINYARD_API_PORT",
        "TRAINYARD_HEARTBEAT_TIMEOUT_S",
        "OPENAI_API_KEY",
        "GITHUB_TOKEN",
    ):
        assert absent not in env, absent
    assert "callback-secret" not in env.values()


def test_the_api_gets_the_platform_configuration_and_nothing_else_of_the_shell() -> None:
    env = api_env(SHELL, PLATFORM)
    assert {name: env[name] for name in PLATFORM} == PLATFORM
    assert env["TRAINYARD_SESSION_SECRET"] == "session-shell"
    assert env["TRAINYARD_LLM_API_KEY"] == "llm-shell"
    assert "OPENAI_API_KEY" not in env
    assert "GITHUB_TOKEN" not in env


TRACES = trace_export_env("http://127.0.0.1:5000", "7")


def test_only_the_api_and_the_worker_are_told_where_spans_go() -> None:
    endpoint = "http://127.0.0.1:5000/v1/traces"
    for env in (api_env(SHELL, PLATFORM, TRACES), worker_env(SHELL, PLATFORM, TRACES)):
        assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == endpoint
        assert env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] == "x-mlflow-experiment-id=7"
    # The API links a job to its trace; the worker only sends spans.
    assert api_env(SHELL, PLATFORM, TRACES)["TRAINYARD_TRACE_EXPERIMENT_ID"] == "7"
    assert "TRAINYARD_TRACE_EXPERIMENT_ID" not in worker_env(SHELL, PLATFORM, TRACES)
    shell = {**SHELL, "OTEL_SERVICE_NAME": "mine"}
    for server in (mlflow_server_env(shell), temporal_server_env(shell)):
        assert not [name for name in server if name.startswith("OTEL_")]


def test_the_users_own_otel_settings_win_over_the_embedded_trace_store() -> None:
    mine = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=collector-key",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    for env in (
        api_env({**SHELL, **mine}, PLATFORM, TRACES),
        worker_env({**SHELL, **mine}, PLATFORM, TRACES),
    ):
        assert {name: env[name] for name in mine} == mine


@pytest.mark.parametrize(
    ("mine", "chose"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "mine"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, True),
        ({"OTEL_SDK_DISABLED": "true"}, True),
    ],
)
def test_the_embedded_trace_store_is_used_unless_the_user_chose_where_spans_go(
    mine: dict[str, str], chose: bool
) -> None:
    assert user_chose_trace_export({**SHELL, **mine}) is chose


def test_the_users_log_format_reaches_the_api_and_the_worker() -> None:
    shell = {**SHELL, "TRAINYARD_LOG_FORMAT": "json"}

    assert api_env(shell, PLATFORM)["TRAINYARD_LOG_FORMAT"] == "json"
    assert worker_env(shell, PLATFORM)["TRAINYARD_LOG_FORMAT"] == "json"
    # Unset: each process's own default (console), nothing forced on it.
    assert "TRAINYARD_LOG_FORMAT" not in worker_env(SHELL, PLATFORM)
