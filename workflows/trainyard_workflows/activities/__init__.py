"""Activities of the training workflow (the only place with side effects)."""

from trainyard_workflows.activities.schemas import (
    EXITED,
    LOST,
    LaunchTrainerInput,
    ReportStateInput,
    ReportStateResult,
    StopResult,
    StopTrainerInput,
    ValidateDatasetInput,
    WatchResult,
    WatchTrainerInput,
)
from trainyard_workflows.activities.training_activities import TrainingActivities

__all__ = [
    "EXITED",
    "LOST",
    "LaunchTrainerInput",
    "ReportStateInput",
    "ReportStateResult",
    "StopResult",
    "StopTrainerInput",
    "TrainingActivities",
    "ValidateDatasetInput",
    "WatchResult",
    "WatchTrainerInput",
]
