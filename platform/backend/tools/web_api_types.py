"""Re-generate the web app's API types from the backend's OpenAPI (run after changing a route
or a body the web app reads):

    uv run python platform/backend/tools/web_api_types.py

Writes the OpenAPI document as `GET /openapi.json` serves it to a temporary file and turns it
into TypeScript with openapi-typescript (a devDependency of platform/web: `npm ci` there
first). The result is platform/web/src/api/openapi.ts; `src/api/types.ts` names the parts
the pages use. `tests/test_web_api_types.py` fails while the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

REPO = Path(__file__).resolve().parents[3]
WEB = REPO / "platform" / "web"
GENERATED = WEB / "src" / "api" / "openapi.ts"
WITH_NODE = REPO / "platform" / "tools" / "with-node.sh"


def openapi_document() -> dict[str, object]:
    """The OpenAPI of the app; the settings are placeholders (the document names none)."""
    settings = BackendSettings(
        data_dir=Path(tempfile.gettempdir()) / "trainyard-openapi",
        internal_token=SecretStr("unused"),
        callback_secret=SecretStr("unused"),
    )
    return create_app(settings).openapi()


def generate(out: Path) -> None:
    """Write the TypeScript types of the API to `out`."""
    generator = WEB / "node_modules" / ".bin" / "openapi-typescript"
    if not generator.exists():
        sys.exit(f"{generator} is missing: run `npm ci` in platform/web first")
    with tempfile.TemporaryDirectory() as folder:
        document = Path(folder) / "openapi.json"
        document.write_text(json.dumps(openapi_document(), indent=1))
        subprocess.run(
            [str(WITH_NODE), str(generator), str(document), "--output", str(out.resolve())],
            cwd=WEB,
            check=True,
            capture_output=True,
            text=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GENERATED, help="where to write the types")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
