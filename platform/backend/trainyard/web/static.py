"""Serving the built single-page app: files under /assets, index.html for every page route.

The SPA routes (`/jobs/<id>`, `/chat/<id>`, ...) are client-side, so a reload on any of them
must get index.html; API paths never fall through to it (an unknown /v1 path stays a JSON 404).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from trainyard.core.errors import NotFound

# Where `npm run build` in platform/web puts the app, for a checkout (the image sets
# TRAINYARD_WEB_DIR to its own copy).
CHECKOUT_WEB_DIR = Path(__file__).resolve().parents[3] / "web" / "dist"

# The web app's pages load only their own scripts and styles, talk only to this origin (the
# API and its WebSocket stream), and may not be framed. Inline styles stay allowed: the
# charts set style attributes. /docs (Swagger UI, from a CDN) is not a page of the app.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

_NOT_PAGES = ("v1/", "internal/", "healthz", "readyz", "docs", "redoc", "openapi.json", "assets/")

_NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>Trainyard</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Trainyard</h1><p>The API is running, but the web app has not been built.</p>
<p>Run <code>make web</code> (or <code>make demo</code>) in the repository, then reload.
The API itself is documented at <a href="/docs">/docs</a>.</p></body></html>"""


class PageNotFound(NotFound):
    code = "not_found"


def mount_web_app(app: FastAPI, folder: Path) -> None:
    """Serve the SPA built into `folder` (a page explaining how to build it if it is not)."""
    folder = folder.resolve()
    index = folder / "index.html"
    assets = folder / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="web-assets")

    # Plain def: the file checks block, so FastAPI runs it in its thread pool.
    @app.get("/{page:path}", include_in_schema=False, response_model=None)
    def web_page(page: str) -> FileResponse | HTMLResponse:
        if page.startswith(_NOT_PAGES):
            raise PageNotFound(f"no route {'/' + page}")
        static = (folder / page).resolve()
        # Top-level files of the build (favicon, robots.txt), never anything above it.
        if page and static.parent == folder and static.is_file():
            return FileResponse(static, headers=_PAGE_HEADERS)
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503, headers=_PAGE_HEADERS)
        # no-cache: a new build's index (naming new hashed assets) is seen at the next load.
        return FileResponse(index, headers={"Cache-Control": "no-cache", **_PAGE_HEADERS})
