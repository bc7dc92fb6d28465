"""No token, API key or cookie value reaches a log: the real `trainyard-api` process, at debug
level, signs in every way there is (and fails every way), then its whole output is searched
for each credential it saw."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from trainyard.cli.embedded import free_local_port
from trainyard_testing.credential_leaks import remember_credential
from trainyard_testing.oidc import OidcProvider


def _start_api(env: dict[str, str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainyard.api"], env=env, stdout=output, stderr=output
    )


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"trainyard-api exited with {process.returncode}")
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("trainyard-api did not answer within 60 s")


async def test_no_credential_appears_in_the_api_log(
    tmp_path: Path, temporal_address: str, oidc_provider: OidcProvider
) -> None:
    port = free_local_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")},
        "TRAINYARD_DATA_DIR": str(tmp_path / "data"),
        "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
        "TRAINYARD_API_PORT": str(port),
        "TRAINYARD_LOG_LEVEL": "debug",
        "TRAINYARD_AUTH_MODE": "oidc",
        "TRAINYARD_OIDC_ISSUER": oidc_provider.issuer,
        "TRAINYARD_OIDC_AUDIENCE": oidc_provider.audience,
        "TRAINYARD_OIDC_GROUPS_CLAIM": "groups",
        "TRAINYARD_OIDC_GROUP_ROLES": '{"ml-team": "ml-team:admin"}',
        "TRAINYARD_SESSION_SECRET": "the-session-secret-of-this-test",
    }
    log = tmp_path / "api.log"
    seen: list[str] = []
    with log.open("wb") as output:
        process = _start_api(env, output)
        try:
            _wait_until_up(url, process)
            async with httpx.AsyncClient(base_url=url, timeout=30) as api:
                token = (await oidc_provider.token_for("alice")).access_token
                expired = oidc_provider.forge(oidc_provider.claims("alice", exp=1, iat=0))
                signed_in = {"Authorization": f"Bearer {token}"}
                assert (await api.get("/v1/me", headers=signed_in)).status_code == 200
                made = await api.post(
                    "/v1/projects/ml-team/api-keys", json={"name": "ci"}, headers=signed_in
                )
                key = made.json()["key"]
                remember_credential(key, "API key")
                keyed = {"Authorization": f"Bearer {key}"}
                assert (await api.get("/v1/jobs", headers=keyed)).status_code == 200
                await api.delete(
                    f"/v1/projects/ml-team/api-keys/{made.json()['id']}", headers=signed_in
                )
                cookie = "a-session-cookie-value-nobody-issued"
                refused = [
                    await api.get("/v1/jobs", headers=keyed),  # revoked
                    await api.get("/v1/jobs", headers={"Authorization": f"Bearer {expired}"}),
                    await api.get("/v1/jobs", headers={"Authorization": f"Bearer {token}x"}),
                    await api.get(
                        "/v1/jobs", headers={"Cookie": f"__Host-trainyard_session={cookie}"}
                    ),
                ]
                assert [r.status_code for r in refused] == [401, 401, 401, 401]
                seen = [token, expired, key, cookie, token.split(".")[2]]
        finally:
            process.terminate()
            process.wait(timeout=15)

    text = log.read_text(errors="replace")
    assert "/v1/jobs" in text  # the log was written (access lines at debug)
    leaked = [value[:12] + "…" for value in seen if value in text]
    assert leaked == []
