"""Storage settings, shared by the backend, the worker and anything else that reads datasets.

One class for every process, so `TRAINYARD_STORAGE_URL` means the same thing everywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainyard_workflows.storage.uris import StorageUriError, parse_storage_uri

# Uploads are spooled to disk and extracted entry by entry, so this bounds disk use and the
# time one request may take, not memory.
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3


class StorageSettings(BaseSettings):
    """Where objects live; every field reads `TRAINYARD_<FIELD>`.

    `storage_url` is `file:///abs/root` or `s3://bucket[/prefix]`; empty means
    `<data_dir>/storage` (the embedded tier).
    """

    # extra="ignore": the other TRAINYARD_ variables belong to the process's own settings.
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    data_dir: Path = Path(".trainyard")
    storage_url: str = ""
    # Absent means AWS; set it for MinIO, Cloudflare R2, moto, ...
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # A storage that does not answer must fail a request in seconds, not hang it.
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_max_attempts: int = Field(default=2, ge=1)

    # Upper bound on an uploaded dataset zip and on its total uncompressed size.
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, ge=1)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("s3_endpoint_url")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _default_and_checked_url(self) -> StorageSettings:
        if not self.storage_url:
            self.storage_url = (self.data_dir / "storage").as_uri()
        try:
            root = parse_storage_uri(self.storage_url)
        except StorageUriError as exc:
            raise ValueError(f"TRAINYARD_STORAGE_URL: {exc}") from exc
        self.storage_url = root.uri
        return self

    @property
    def is_s3(self) -> bool:
        return self.storage_url.startswith("s3://")

    def trainer_env(self) -> dict[str, str]:
        """The standard boto3 variables a trainer needs to reach S3 storage ({} for file://).

        The values are secrets: callers pass them to a child process, never to a log.
        """
        if not self.is_s3:
            return {}
        env = {"AWS_DEFAULT_REGION": self.s3_region}
        if self.s3_endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.s3_access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.s3_access_key_id
        if self.s3_secret_access_key is not None:
            env["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_access_key.get_secret_value()
        return env
