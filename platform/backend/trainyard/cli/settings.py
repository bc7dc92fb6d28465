"""Settings of the `trainyard` CLI process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Base URL of the backend")
    data_dir: Path = Field(Path(".trainyard"), description="Where the embedded tier keeps state")
    request_timeout_s: float = 30.0
    # Automation: a key used instead of the stored sign-in (never read from argv: ps shows it).
    api_key: SecretStr | None = Field(None, description="An API key (tyk_...)")
    # The project requests act in (the `Trainyard-Project` header); `--project` overrides it.
    project: str | None = Field(None, description="A project slug; default: the caller's own")
    # Where `trainyard login` keeps credentials: $XDG_CONFIG_HOME/trainyard, else
    # ~/.config/trainyard (the XDG base directory default).
    xdg_config_home: Path | None = Field(None, validation_alias="XDG_CONFIG_HOME")

    @property
    def stream_url(self) -> str:
        return "ws" + self.api_url.removeprefix("http")

    @property
    def credentials_path(self) -> Path:
        # The spec says to ignore a relative XDG_CONFIG_HOME.
        xdg = self.xdg_config_home
        base = xdg if xdg is not None and xdg.is_absolute() else Path.home() / ".config"
        return base / "trainyard" / "credentials.json"


@lru_cache
def get_cli_settings() -> CliSettings:
    return CliSettings()
