"""Experiment tracking: each job is an MLflow run (docs/architecture.md, "Tracking").

`build_tracker(settings)` is the one place that knows whether tracking is on; without
TRAINYARD_MLFLOW_TRACKING_URI it returns None and the tracking activities do nothing.
"""

from trainyard_workflows.tracking.factory import build_tracker
from trainyard_workflows.tracking.metrics import heartbeat_metrics, metric_key, run_params
from trainyard_workflows.tracking.mlflow_tracker import (
    EXPERIMENT_NAME,
    MlflowTracker,
    RunRef,
    model_name_for,
)

__all__ = [
    "EXPERIMENT_NAME",
    "MlflowTracker",
    "RunRef",
    "build_tracker",
    "heartbeat_metrics",
    "metric_key",
    "model_name_for",
    "run_params",
]
