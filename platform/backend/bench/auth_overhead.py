"""What signing in costs (issue 19), in one run on this machine:

jobs: GET /v1/jobs and POST /v1/jobs throughput with OIDC bearer tokens (a real OpenID
    Provider, oidc-provider on Node) vs with no sign-in (auth_mode=local), two API processes of
    the same code, rounds alternated; target >= 0.9x.
heartbeats: heartbeat ingest of this checkout vs the commit before issue 19 (a git worktree of
    BASE_COMMIT, the same bench server), rounds alternated; target >= 0.95x.

Run from platform/backend: `python -m bench.auth_overhead`. SQLite, closed loops of 8
connections; figures are medians of the rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import uvloop
from bench.live_harness import (
    BACKEND_DIR,
    HOST,
    ApiProcess,
    api_process,
    closed_loop_rate,
    heartbeat_body,
    running_job,
    temporal_dev_server,
    verdict,
)
from bench.wire_clients import HttpConnection

from trainyard_testing.oidc import OidcProvider

# The last commit before issue 19 (identity and access) landed.
BASE_COMMIT = "82f1980"
ROUNDS, SECONDS, CONNECTIONS = 3, 4.0, 8


def base_checkout(into: Path, commit: str = BASE_COMMIT) -> Path | None:
    """`commit`'s platform/backend in a detached worktree (None, saying why, if git cannot)."""
    repo = BACKEND_DIR.parents[1]
    made = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(into), commit],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        print(f"heartbeats: no checkout of {commit} ({made.stderr.strip()}); skipped")
        return None
    return into / "platform" / "backend"


def remove_checkout(into: Path) -> None:
    repo = BACKEND_DIR.parents[1]
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "remove", "--force", str(into)], check=False
    )


async def rate(
    api: ApiProcess, method: str, path: str, body: bytes, headers: dict[str, str]
) -> float:
    connections = [await HttpConnection.open(HOST, api.port) for _ in range(CONNECTIONS)]

    async def one(connection: HttpConnection, _: int) -> None:
        code, answer = await connection.request(method, path, body, headers)
        if code >= 300:
            raise RuntimeError(f"{method} {path}: {code} {answer[:200]!r}")

    try:
        return await closed_loop_rate(connections, one, SECONDS)
    finally:
        for connection in connections:
            await connection.close()


async def heartbeat_rate(api: ApiProcess, dataset: str) -> float:
    return (await heartbeat_cost(api, dataset))[0]


async def heartbeat_cost(api: ApiProcess, dataset: str) -> tuple[float, float]:
    """Heartbeats/s into one running job, and the API's CPU seconds per heartbeat meanwhile."""
    setup = await HttpConnection.open(HOST, api.port)
    job_id, headers = await running_job(setup, dataset)
    await setup.close()
    path = f"/v1/jobs/{job_id}/heartbeat"
    connections = [await HttpConnection.open(HOST, api.port) for _ in range(CONNECTIONS)]

    async def one(connection: HttpConnection, index: int) -> None:
        code, _ = await connection.request("POST", path, heartbeat_body(index, False), headers)
        if code != 202:
            raise RuntimeError(f"heartbeat: {code}")

    try:
        cpu, started = api.cpu_s(), time.perf_counter()
        rate = await closed_loop_rate(connections, one, SECONDS)
        beats = rate * (time.perf_counter() - started)
        return rate, (api.cpu_s() - cpu) / beats
    finally:
        for connection in connections:
            await connection.close()


def line(what: str, first: list[float], second: list[float], target: float) -> None:
    a, b = statistics.median(first), statistics.median(second)
    met = verdict(a / b >= target)
    print(f"  {what:<34} {a:8.0f}/s vs {b:8.0f}/s   ratio {a / b:.2f} (>= {target}: {met})")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="trainyard-auth-bench-") as scratch:
        root = Path(scratch)
        dataset = root / "shapes"
        dataset.mkdir()
        (dataset / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [a]\n")
        job = json.dumps(
            {"model": "yolo11n.yaml", "dataset": dataset.as_uri(), "epochs": 1, "imgsz": 64}
        ).encode()
        provider = OidcProvider(root / "idp", access_token_ttl_s=3600)
        provider.start()
        base = base_checkout(root / "base")
        try:
            with temporal_dev_server() as temporal:
                async with AsyncExitStack() as stack:
                    oidc_settings = {
                        "TRAINYARD_AUTH_MODE": "oidc",
                        "TRAINYARD_OIDC_ISSUER": provider.issuer,
                        "TRAINYARD_OIDC_AUDIENCE": provider.audience,
                        "TRAINYARD_OIDC_GROUPS_CLAIM": "groups",
                        "TRAINYARD_OIDC_GROUP_ROLES": '{"ml-team": "ml-team:member"}',
                        "TRAINYARD_SESSION_SECRET": "bench-session-secret",
                    }
                    local = await stack.enter_async_context(
                        api_process(temporal, "sqlite", False, root / "local")
                    )
                    oidc = await stack.enter_async_context(
                        api_process(temporal, "sqlite", False, root / "oidc", oidc_settings)
                    )
                    before = None
                    if base is not None:
                        before = await stack.enter_async_context(
                            api_process(temporal, "sqlite", False, root / "b", backend_dir=base)
                        )
                    token = (await provider.token_for("alice")).access_token
                    signed_in = {"Authorization": f"Bearer {token}"}
                    figures: dict[str, list[float]] = {}
                    for _ in range(ROUNDS):
                        for name, api, headers in (("local", local, {}), ("oidc", oidc, signed_in)):
                            figures.setdefault(f"get {name}", []).append(
                                await rate(api, "GET", "/v1/jobs?limit=20", b"", headers)
                            )
                            figures.setdefault(f"post {name}", []).append(
                                await rate(api, "POST", "/v1/jobs", job, headers)
                            )
                        if before is not None:
                            for name, api in (("now", local), ("base", before)):
                                figures.setdefault(f"beat {name}", []).append(
                                    await heartbeat_rate(api, dataset.as_uri())
                                )
        finally:
            provider.stop()
            if base is not None:
                remove_checkout(root / "base")
    print(
        f"auth overhead (SQLite, {CONNECTIONS} connections, median of {ROUNDS} x {SECONDS:.0f} s)"
    )
    line("GET /v1/jobs: OIDC vs no sign-in", figures["get oidc"], figures["get local"], 0.9)
    line("POST /v1/jobs: OIDC vs no sign-in", figures["post oidc"], figures["post local"], 0.9)
    if "beat now" in figures:
        line(f"heartbeats: now vs {BASE_COMMIT}", figures["beat now"], figures["beat base"], 0.95)


if __name__ == "__main__":
    uvloop.run(main())
