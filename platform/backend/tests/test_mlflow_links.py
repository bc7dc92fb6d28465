"""Where the job's link to its MLflow run points (BackendSettings.mlflow_link_base): only at an
address a browser may open, never at the in-cluster tracking URI."""

from __future__ import annotations

import pytest

from trainyard.core.settings import BackendSettings


def _settings(settings: BackendSettings, tracking: str | None, ui: str | None) -> BackendSettings:
    return settings.model_copy(update={"mlflow_tracking_uri": tracking, "mlflow_ui_url": ui})


@pytest.mark.parametrize(
    "tracking",
    [
        "http://mlflow.mlflow.svc:5000",
        "http://mlflow:5000",
        "http://10.0.3.7:5000",
        "https://mlflow.internal.example.org",
        None,
    ],
)
def test_without_a_ui_url_no_link_points_at_a_non_loopback_tracking_uri(
    settings: BackendSettings, tracking: str | None
) -> None:
    assert _settings(settings, tracking, None).mlflow_link_base is None


def test_the_ui_url_is_the_link_whatever_the_tracking_uri(settings: BackendSettings) -> None:
    configured = _settings(settings, "http://mlflow.mlflow.svc:5000", "https://mlflow.example/")
    assert configured.mlflow_link_base == "https://mlflow.example"


@pytest.mark.parametrize(
    "tracking", ["http://127.0.0.1:5000/", "http://localhost:5000", "http://[::1]:5000"]
)
def test_a_loopback_tracking_uri_is_the_link_of_the_embedded_tier(
    settings: BackendSettings, tracking: str
) -> None:
    assert _settings(settings, tracking, None).mlflow_link_base == tracking.rstrip("/")
