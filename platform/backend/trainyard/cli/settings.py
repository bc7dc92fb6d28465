"""Settings of the `trainyard` CLI process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Base URL of the backend")
    data_dir: Path = Field(Path(".trainyard"), description="Where the embedded tier keeps state")
    request_timeout_s: float = 30.0

    @property
    def stream_url(self) -> str:
        return "ws" + self.api_url.removeprefix("http")


@lru_cache
def get_cli_settings() -> CliSettings:
    return CliSettings()
