"""/docs without a CDN: Swagger UI's files come from the installed `fastapi-offline` package
(part of the serve extra) and are served under /docs/assets; the page's one inline script is
allowed by its hash in the page's Content-Security-Policy."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rankkit.serve.security import csp_hash

ASSETS = "/docs/assets"


def swagger_assets() -> Path | None:
    """The folder of Swagger UI's files in the installed fastapi-offline package, if any."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    ).body.decode("utf-8")
    scripts = [csp_hash(s) for s in re.findall(r"<script>(.*?)</script>", html, re.S)]
    policy = (
        f"default-src 'none'; script-src 'self' {' '.join(scripts)}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


def add_docs(app: FastAPI) -> None:
    """GET /docs and its assets; without fastapi-offline installed, /docs says how to get it."""
    assets = swagger_assets()
    if assets is not None:
        app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False, response_model=None)
    async def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(
                "<!doctype html><title>rankkit API</title><p>Swagger UI is not installed: "
                "<code>pip install fastapi-offline</code> (part of rankkit[serve]); the schema is at "
                f'<a href="{app.openapi_url}">{app.openapi_url}</a>.',
                503,
            )
        return docs_page(app.openapi_url or "/openapi.json", f"{app.title} API")
