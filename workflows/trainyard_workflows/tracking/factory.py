"""The one place that decides whether jobs are tracked, and where."""

from __future__ import annotations

import logging
import os

from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking.mlflow_tracker import MlflowTracker

logger = logging.getLogger(__name__)

# MLflow's HTTP client retries a failing request 7 times with a factor-2 backoff and waits
# 120 s per request by default: minutes per call against a server that is down. Tracking must
# never hold a job up, so these are shorter unless the operator set them.
_MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def build_tracker(settings: WorkerSettings) -> MlflowTracker | None:
    """An MlflowTracker for TRAINYARD_MLFLOW_TRACKING_URI, or None (tracking off, said once)."""
    if not settings.mlflow_tracking_uri:
        logger.info("tracking off: TRAINYARD_MLFLOW_TRACKING_URI is not set")
        return None
    for name, value in _MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logger.info("tracking jobs as MLflow runs at %s", settings.mlflow_tracking_uri)
    return MlflowTracker(settings.mlflow_tracking_uri)
