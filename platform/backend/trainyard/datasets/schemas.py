"""Request and response bodies of the datasets API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A name is a word a person types (`trainyard train --dataset shapes`), never a URI.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

DatasetFormat = Literal["yolo", "imagefolder", "text"]
DatasetStatus = Literal["pending", "valid", "invalid"]


class DatasetCreate(BaseModel):
    """Register a dataset that already lies in storage (JSON body of POST /v1/datasets)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, examples=["shapes"])
    uri: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "file:///abs/folder or s3://bucket/prefix (inside the configured bucket) of the "
            "dataset (for YOLO, the folder holding data.yaml; for ImageFolder, train/ and val/)"
        ),
        examples=["file:///data/shapes", "s3://datasets/shapes"],
    )
    format: DatasetFormat = "yolo"


class DatasetUploadFields(BaseModel):
    """The form fields that come with an uploaded zip (multipart POST /v1/datasets)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    format: DatasetFormat = "yolo"


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    owner: str  # the user who submitted / registered it
    name: str
    uri: str
    format: str
    status: DatasetStatus
    report: dict[str, Any] | None = Field(
        default=None, description="the validation report (errors, warnings, counts, ...)"
    )
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetRead]
