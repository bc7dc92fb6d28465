"""Dataset checks run before any trainer is launched, so a broken dataset fails in seconds."""

from trainyard_workflows.validation.dataset import (
    FORMAT_OF_TASK,
    DatasetFormat,
    validate_dataset,
    validate_location,
)
from trainyard_workflows.validation.report import SplitCounts, ValidationReport

__all__ = [
    "FORMAT_OF_TASK",
    "DatasetFormat",
    "SplitCounts",
    "ValidationReport",
    "validate_dataset",
    "validate_location",
]
