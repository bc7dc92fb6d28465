"""S3 for the tests: moto in server mode, a real HTTP endpoint boto3 talks to unchanged."""

from __future__ import annotations

import uuid

import boto3

# moto accepts any credentials; these are the ones every test uses.
MOTO_KEY = "testing"


def new_bucket(endpoint: str, prefix: str = "test") -> str:
    """A fresh, empty bucket on the moto server at `endpoint`."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
    ).create_bucket(Bucket=bucket)
    return bucket
