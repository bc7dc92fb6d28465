"""`trainyard login`, `whoami`, `logout` and `--project` against a real OpenID Provider
(oidc-provider on Node) and a live API in auth_mode=oidc: the device flow approved as a user
would, the credentials file (0600, no token printed), a refresh when the access token expires
and once more on a 401, revocation at logout, and API keys made through the API."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer, make_oidc_settings, run_server
from trainyard.cli.app import app
from trainyard.cli.credentials import CredentialStore, OidcCredentials
from trainyard.cli.settings import get_cli_settings
from trainyard.core.settings import BackendSettings
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.main import create_app
from trainyard_testing.credential_leaks import remember_credential
from trainyard_testing.oidc import OidcProvider, OidcProviderError

# Short-lived access tokens: a test can wait one out.
ACCESS_TOKEN_TTL_S = 3


@pytest.fixture
def short_lived_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path / "idp", access_token_ttl_s=ACCESS_TOKEN_TTL_S)
    try:
        provider.start()
    except OidcProviderError as error:
        pytest.fail(str(error), pytrace=False)
    yield provider
    provider.stop()


def oidc_settings(tmp_path: Path, temporal_address: str, provider: OidcProvider) -> BackendSettings:
    """Settings of an API that trusts `provider`; alice's group ml-team is a member of the
    default project. No leeway: an expired token is refused at once."""
    return make_oidc_settings(
        tmp_path / "data",
        temporal_address,
        provider,
        oidc_group_roles={"ml-team": "default:member"},
        oidc_leeway_s=0,
    )


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user of their own (HOME, XDG_CONFIG_HOME in tmp_path); returns the credentials path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("TRAINYARD_API_KEY", "TRAINYARD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    get_cli_settings.cache_clear()
    yield tmp_path / "config" / "trainyard" / "credentials.json"
    get_cli_settings.cache_clear()


def use_api(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_API_URL", url)
    get_cli_settings.cache_clear()


def login_as(subject: str, provider: OidcProvider) -> str:
    """`trainyard login` in a process of its own, approved at the IdP as `subject` the moment
    it shows its code; returns what it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "trainyard.cli", "login"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    printed: list[str] = []
    try:
        while True:
            line = lines.get(timeout=30)
            printed.append(line)
            found = re.search(r"enter the code ([A-Z0-9-]+)", line)
            if found:
                break
        asyncio.run(provider.approve_device_code(found.group(1), subject))
        assert process.wait(timeout=30) == 0, "".join(printed)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    while not lines.empty():
        printed.append(lines.get())
    return "".join(printed)


def one_line(output: str) -> str:
    """The output with the console's line wrapping undone."""
    return " ".join(output.split())


def stored_oidc(path: Path, api_url: str) -> OidcCredentials:
    stored = CredentialStore(path).get(api_url)
    assert isinstance(stored, OidcCredentials)
    # Tokens of the device flow, which the CLI's own process obtained.
    remember_credential(stored.access_token.get_secret_value(), "access token")
    if stored.refresh_token is not None:
        remember_credential(stored.refresh_token.get_secret_value(), "refresh token")
    return stored


def refreshes_expired_and_refused_tokens(cli: CliRunner, cli_env: Path, api_url: str) -> None:
    first = stored_oidc(cli_env, api_url)
    make_shapes(cli_env.parent / "shapes", ShapesSpec(train_images=2, val_images=1))
    # The access token expires: the API refuses it, the CLI refreshes before its request (an
    # upload streams its body: it cannot be sent again after a 401).
    time.sleep(max(0.0, first.expires_at - time.time()) + 0.5)
    stale = {"Authorization": f"Bearer {first.access_token.get_secret_value()}"}
    assert httpx.get(f"{api_url}/v1/me", headers=stale).status_code == 401
    uploaded = cli.invoke(app, ["datasets", "upload", str(cli_env.parent / "shapes")])
    assert uploaded.exit_code == 0, uploaded.output
    second = stored_oidc(cli_env, api_url)
    assert second.access_token != first.access_token
    assert stat.S_IMODE(cli_env.stat().st_mode) == 0o600

    # A token the CLI believes fresh but the API refuses: one refresh after the 401.
    CredentialStore(cli_env).put(
        api_url,
        second.model_copy(
            update={
                "access_token": first.access_token,
                "refresh_after": time.time() + 3600,
                "expires_at": time.time() + 3600,
            }
        ),
    )
    listed = cli.invoke(app, ["jobs"])
    assert listed.exit_code == 0, listed.output
    assert stored_oidc(cli_env, api_url).access_token not in (
        first.access_token,
        second.access_token,
    )


def project_reaches_the_api(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    # --project reaches the API as the Trainyard-Project header.
    elsewhere = cli.invoke(app, ["--project", "nope", "jobs"])
    assert elsewhere.exit_code == 2
    assert "no project 'nope' of yours" in one_line(elsewhere.output)

    monkeypatch.setenv("TRAINYARD_PROJECT", "elsewhere")
    get_cli_settings.cache_clear()
    elsewhere = cli.invoke(app, ["jobs"])
    assert "no project 'elsewhere' of yours" in one_line(elsewhere.output)
    monkeypatch.delenv("TRAINYARD_PROJECT")
    get_cli_settings.cache_clear()


def test_login_whoami_refresh_project_and_logout_with_the_device_flow(
    tmp_path: Path,
    temporal_address: str,
    short_lived_provider: OidcProvider,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = short_lived_provider
    settings = oidc_settings(tmp_path, temporal_address, provider)
    cli = CliRunner()
    with run_server(create_app(settings)) as server:
        use_api(server.http_url, monkeypatch)
        printed = login_as("alice", provider)

        assert f"signed in to {server.http_url} as alice@example.test (oidc)" in printed
        assert stat.S_IMODE(cli_env.stat().st_mode) == 0o600
        assert stat.S_IMODE(cli_env.parent.stat().st_mode) == 0o700
        first = stored_oidc(cli_env, server.http_url)
        assert first.refresh_token is not None
        for token in (first.access_token, first.refresh_token):
            assert token.get_secret_value() not in printed

        who = cli.invoke(app, ["whoami"])
        assert who.exit_code == 0, who.output
        assert "alice@example.test signed in with oidc" in one_line(who.output)
        assert "default (default)" in who.output
        assert "member" in who.output

        refreshes_expired_and_refused_tokens(cli, cli_env, server.http_url)

        # The stream's handshake carries the credential too: the job is looked up, not refused.
        watched = cli.invoke(app, ["watch", "job-nowhere"])
        assert watched.exit_code == 2
        assert "job job-nowhere does not exist" in one_line(watched.output)

        project_reaches_the_api(cli, monkeypatch)

        refresh_token = stored_oidc(cli_env, server.http_url).refresh_token
        assert refresh_token is not None
        signed_out = cli.invoke(app, ["logout"])
        assert signed_out.exit_code == 0, signed_out.output
        assert f"signed out of {server.http_url}" in one_line(signed_out.output)
        assert not cli_env.exists()
        with pytest.raises(OidcProviderError, match="invalid_grant"):
            asyncio.run(provider.refresh(refresh_token.get_secret_value()))

        unwatched = cli.invoke(app, ["watch", "job-nowhere"])
        assert unwatched.exit_code == 2
        assert "refused your sign-in: run `trainyard login`" in one_line(unwatched.output)
        refused = cli.invoke(app, ["jobs"])
        assert refused.exit_code == 2
        assert (
            "HTTP 401: sign in: send Authorization: Bearer <token or API key>; "
            f"not signed in to {server.http_url}: run `trainyard login`"
        ) in one_line(refused.output)


def test_login_with_an_api_key_made_through_the_api_reads_it_from_stdin(
    tmp_path: Path,
    temporal_address: str,
    oidc_provider: OidcProvider,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = oidc_settings(tmp_path, temporal_address, oidc_provider)
    cli = CliRunner()
    with run_server(create_app(settings)) as server:
        use_api(server.http_url, monkeypatch)
        assert httpx.get(f"{server.http_url}/v1/auth/config").json() == {
            "auth_mode": "oidc",
            "issuer": oidc_provider.issuer,
            "audience": oidc_provider.audience,
            "cli_client_id": oidc_provider.cli_client_id,
            "scopes": ["openid", "profile", "email", "offline_access"],
        }
        tokens = asyncio.run(oidc_provider.token_for("alice"))
        made = httpx.post(
            f"{server.http_url}/v1/me/api-keys",
            json={"name": "laptop"},
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        remember_credential(key, "API key")
        prefix = made.json()["prefix"]

        signed_in = cli.invoke(app, ["login", "--api-key"], input=f"{key}\n")

        assert signed_in.exit_code == 0, signed_in.output
        assert f"as alice@example.test (api_key:tyk_{prefix})" in one_line(signed_in.output)
        assert key not in signed_in.output
        assert json.loads(cli_env.read_text())["apis"][server.http_url] == {
            "kind": "api_key",
            "api_key": key,
        }
        assert stat.S_IMODE(cli_env.stat().st_mode) == 0o600
        who = cli.invoke(app, ["whoami"])
        assert who.exit_code == 0
        assert f"signed in with api_key:tyk_{prefix}" in one_line(who.output)

        # Automation: the key in TRAINYARD_API_KEY, nothing stored.
        assert cli.invoke(app, ["logout"]).exit_code == 0
        monkeypatch.setenv("TRAINYARD_API_KEY", key)
        get_cli_settings.cache_clear()
        who = cli.invoke(app, ["whoami"])
        assert who.exit_code == 0
        assert f"signed in with api_key:tyk_{prefix}" in one_line(who.output)

        refused = cli.invoke(app, ["login", "--api-key"], input="tyk_not_a_key\n")
        assert refused.exit_code == 2
        assert "the key was not accepted" in one_line(refused.output)


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_login_on_a_local_platform_says_there_is_nothing_to_sign_in_to(
    live_server: LiveServer, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_api(live_server.http_url, monkeypatch)

    result = CliRunner().invoke(app, ["login"])

    assert result.exit_code == 0, result.output
    assert "nothing to sign in to" in one_line(result.output)
    assert not cli_env.exists()
