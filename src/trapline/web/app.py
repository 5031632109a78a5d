"""The application factory: ``create_app(url, token)`` -> a FastAPI (ASGI) app.

The app reads the run through one SQLAlchemy engine (the storage models, read only)
and writes only the monitoring list, through :class:`trapline.storage.Store`, and
only with the configured token. Static files (Plotly's JavaScript from the installed
``plotly`` package, the style sheet) are served locally: pages never load anything
from the internet.
"""

from __future__ import annotations

import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from trapline.storage import Store
from trapline.storage.engine import describe, make_engine, normalise_url
from trapline.web import errors, views
from trapline.web.formats import SuffixFormatMiddleware

HERE = Path(__file__).parent
TOKEN_ENV = "TRAPLINE_TOKEN"


@dataclass
class Settings:
    """What the views need: the engine, the URL (for the writer) and the token."""

    url: URL
    engine: Engine
    token: str | None
    image_root: str | None = None  # where relative stored image paths start
    title: str = "Trapline"
    _store: object | None = None

    def store(self):
        """The writer for the monitoring list (created on first use)."""
        if self._store is None:
            self._store = Store(self.url)
        return self._store

    def close(self) -> None:
        self.engine.dispose()
        if self._store is not None:
            self._store.close()


def plotly_js() -> Path | None:
    """``plotly.min.js`` shipped inside the installed plotly package, if any."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.exists() else None


def create_app(url: str | URL, token: str | None = None, *, use_env_token: bool = True,
               image_root: str | Path | None = None) -> FastAPI:
    """The web application on the run at ``url`` (SQLAlchemy URL or SQLite file).

    ``image_root``: the folder relative image paths of older databases start from
    (the folder the run was started in); absolute paths are used as stored.

    ``token``: needed for writes (monitoring list); None falls back to the environment
    variable ``TRAPLINE_TOKEN`` (unless ``use_env_token`` is False); without a token
    every write is refused."""
    if token is None and use_env_token:
        token = os.environ.get(TOKEN_ENV) or None
    url = normalise_url(url)
    settings = Settings(url=url, engine=make_engine(url, must_exist=True), token=token,
                        image_root=str(image_root) if image_root is not None else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        settings.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Trapline",
        summary="Web interface and JSON API of a stored Trapline run",
        description=(
            f"Run: {describe(url)}. Every HTML page has a JSON twin (`?format=json` or the "
            "same path with a `.json` suffix); tables also as CSV (`?format=csv`, `.csv`)."
        ),
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load their JavaScript from a CDN:
        redoc_url=None,  # /api lists the endpoints instead, from /openapi.json.
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.templates.env.globals.update(views.template_globals(settings))
    app.state.templates.env.filters.update(views.template_filters())
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    js = plotly_js()
    if js is not None:
        app.mount("/vendor", StaticFiles(directory=str(js.parent)), name="vendor")
    app.state.has_plotly = js is not None
    errors.install(app)
    app.add_middleware(SuffixFormatMiddleware)
    app.include_router(views.router)
    return app


def create_runs_app(urls: dict[str, str | URL], token: str | None = None, *,
                    image_root: str | Path | None = None) -> FastAPI:
    """One server for several stored runs (one run per database, as Trapline keeps
    them): each run's pages under ``/runs/NAME/``, and at ``/`` the list of runs (also
    as JSON: ``/?format=json``)."""
    app = FastAPI(title="Trapline runs", docs_url=None, redoc_url=None,
                  summary="Several stored Trapline runs, one per database")
    described = {name: describe(normalise_url(url)) for name, url in urls.items()}

    @app.get("/", summary="The runs this server serves")
    def runs(request: Request, format: str = "html") -> Response:
        rows = [{"name": name, "database": db, "url": f"/runs/{name}/"}
                for name, db in described.items()]
        if format == "json" or "text/html" not in request.headers.get("accept", "text/html"):
            return JSONResponse({"runs": rows})
        items = "".join(f'<li><a href="{html.escape(r["url"])}">{html.escape(r["name"])}</a> '
                        f'<code>{html.escape(r["database"])}</code></li>' for r in rows)
        return HTMLResponse("<!doctype html><html><head><meta charset=utf-8><title>Trapline "
                            "runs</title><link rel=stylesheet href=\"/runs/"
                            f'{html.escape(next(iter(urls)))}/static/style.css"></head><body>'
                            f"<h1>Trapline runs</h1><p>{len(rows)} runs, one database each:</p>"
                            f"<ul id=runs>{items}</ul></body></html>")

    for name, url in urls.items():
        app.mount(f"/runs/{name}", create_app(url, token, use_env_token=False,
                                               image_root=image_root))
    return app
