"""Which process of the embedded tier holds which secret (docs/operations.md): read from the
running processes' own environments (`/proc/<pid>/environ`), every process of each component's
group (the MLflow server, the Temporal server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.cli.proc_table import processes

pytestmark = pytest.mark.xdist_group("e2e")


def _environments(leader: int) -> list[str]:
    """The environment of each live process of `leader`'s process group, as raw text."""
    found = []
    for pid, fields in processes():
        if int(fields[2]) == leader and fields[0] != "Z":
            try:
                found.append(Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace"))
            except OSError:
                continue  # gone meanwhile
    assert found, f"no live process in group {leader}"
    return found


def test_the_mlflow_and_temporal_servers_hold_no_platform_secret_and_the_worker_no_signing_key(
    platform: EmbeddedPlatform,
) -> None:
    stored = json.loads((platform.config.data_dir / "secrets.json").read_text())
    internal_token, callback_secret = stored["internal_token"], stored["callback_secret"]
    pids = platform.pids

    for server in ("mlflow", "temporal"):
        for environ in _environments(pids[server]):
            assert internal_token not in environ, server
            assert callback_secret not in environ, server
            assert "TRAINYARD_" not in environ, server
    for environ in _environments(pids["worker"]):
        assert internal_token in environ
        assert callback_secret not in environ
        assert "TRAINYARD_CALLBACK_SECRET" not in environ
    # The API issues callback tokens: it alone holds the signing secret.
    assert any(callback_secret in environ for environ in _environments(pids["api"]))
