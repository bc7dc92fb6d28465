"""Backend settings: defaults, environment, and refusing embedded secrets outside SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trainyard.core.settings import EMBEDDED_INTERNAL_TOKEN, BackendSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TRAINYARD_"):
            monkeypatch.delenv(name)


def test_defaults_make_an_embedded_backend_under_an_absolute_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = BackendSettings()

    assert settings.data_dir == tmp_path / ".trainyard"
    assert (
        settings.database_url == f"sqlite+aiosqlite:///{tmp_path / '.trainyard' / 'trainyard.db'}"
    )
    assert settings.task_queue == "trainyard-training"
    assert (settings.owner, settings.max_epochs, settings.max_gpus, settings.max_batch) == (
        "local",
        10_000,
        8,
        1024,
    )
    assert settings.heartbeat_timeout_s == 120
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert settings.internal_token.get_secret_value() == EMBEDDED_INTERNAL_TOKEN


def test_every_field_reads_its_trainyard_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRAINYARD_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TRAINYARD_TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("TRAINYARD_MAX_EPOCHS", "50")
    monkeypatch.setenv("TRAINYARD_API_PORT", "9000")
    # Variables meant for the worker, set by the same supervisor, are not an error here.
    monkeypatch.setenv("TRAINYARD_BACKEND_URL", "http://127.0.0.1:9000")

    settings = BackendSettings()

    assert settings.data_dir == tmp_path / "d"
    assert settings.database_url.endswith(f"{tmp_path / 'd' / 'trainyard.db'}")
    assert (settings.temporal_address, settings.max_epochs, settings.api_port) == (
        "temporal:7233",
        50,
        9000,
    )


def test_embedded_secrets_are_refused_outside_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_DATABASE_URL", "postgresql+asyncpg://db/trainyard")

    with pytest.raises(ValidationError, match="TRAINYARD_INTERNAL_TOKEN must be set"):
        BackendSettings()
    monkeypatch.setenv("TRAINYARD_INTERNAL_TOKEN", "a-real-secret")
    with pytest.raises(ValidationError, match="TRAINYARD_CALLBACK_SECRET must be set"):
        BackendSettings()
    monkeypatch.setenv("TRAINYARD_CALLBACK_SECRET", "another-real-secret")
    assert not BackendSettings().is_sqlite


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_CALLBACK_SECRET", "hunter2")

    assert "hunter2" not in repr(BackendSettings())


def test_no_sign_in_is_refused_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_API_HOST", "0.0.0.0")

    with pytest.raises(ValidationError, match="TRAINYARD_AUTH_MODE=local"):
        BackendSettings()
    monkeypatch.setenv("TRAINYARD_AUTH_MODE", "oidc")
    with pytest.raises(ValidationError, match="TRAINYARD_OIDC_ISSUER and TRAINYARD_OIDC_AUDIENCE"):
        BackendSettings()
    monkeypatch.setenv("TRAINYARD_OIDC_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("TRAINYARD_OIDC_AUDIENCE", "trainyard")
    with pytest.raises(ValidationError, match="TRAINYARD_SESSION_SECRET"):
        BackendSettings()
    monkeypatch.setenv("TRAINYARD_SESSION_SECRET", "a-real-secret")
    assert BackendSettings().auth_mode == "oidc"


def test_trusted_hosts_and_origins_come_from_loopback_and_the_public_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINYARD_PUBLIC_URL", "https://Trainyard.example.com")
    monkeypatch.setenv("TRAINYARD_API_PORT", "8100")

    settings = BackendSettings()

    assert settings.trusted_hosts == {"127.0.0.1", "localhost", "::1", "trainyard.example.com"}
    assert "https://trainyard.example.com" in settings.trusted_origins
    assert {"http://127.0.0.1:8100", "http://localhost:8100", "http://[::1]:8100"} <= (
        settings.trusted_origins
    )
    assert "http://trainyard.example.com:8100" in settings.trusted_origins
