"""The web app's API types are generated from the OpenAPI; the committed file must be what
the current backend generates (else the UI compiles against an API that no longer exists)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TOOL = REPO / "platform" / "backend" / "tools" / "web_api_types.py"
COMMITTED = REPO / "platform" / "web" / "src" / "api" / "openapi.ts"
COMMAND = "uv run python platform/backend/tools/web_api_types.py"


def test_the_committed_web_api_types_are_what_the_openapi_generates(tmp_path: Path) -> None:
    fresh = tmp_path / "openapi.ts"

    generated = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert generated.returncode == 0, f"{COMMAND} failed:\n{generated.stdout}{generated.stderr}"
    assert fresh.read_text() == COMMITTED.read_text(), (
        f"platform/web/src/api/openapi.ts is stale: run `{COMMAND}` and commit the result"
    )
