"""Output formats: every page as HTML, JSON and (tables) CSV.

``/sources.json`` is ``/sources?format=json``: :class:`SuffixFormatMiddleware` turns a
``.json`` or ``.csv`` suffix into the ``format`` query parameter before routing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response

Format = Literal["html", "json", "csv"]
SUFFIXES = {".json": "json", ".csv": "csv"}
UNTOUCHED = ("/static/", "/vendor/", "/openapi.json", "/docs", "/redoc")


class SuffixFormatMiddleware:
    """ASGI middleware: ``/path.json`` -> ``/path?format=json`` (also ``.csv``); empty
    query parameters (``?flux_min=`` from a blank form field) are dropped, so they
    mean "no filter"."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            raw = scope.get("query_string", b"")
            if b"=&" in raw + b"&":
                kept = [(k, v) for k, v in parse_qsl(raw.decode("latin-1"),
                                                     keep_blank_values=True) if v != ""]
                scope = dict(scope)
                scope["query_string"] = urlencode(kept).encode("latin-1")
            path: str = scope["path"]
            if not path.startswith(UNTOUCHED):
                for suffix, fmt in SUFFIXES.items():
                    if path.endswith(suffix) and len(path) > len(suffix) + 1:
                        scope = dict(scope)
                        scope["path"] = path[: -len(suffix)]
                        scope["raw_path"] = scope["path"].encode()
                        query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode())
                                 if k != "format"]
                        query.append(("format", fmt))
                        scope["query_string"] = urlencode(query).encode()
                        break
        await self.app(scope, receive, send)


def csv_response(rows: Sequence[dict[str, Any]], name: str,
                 columns: Sequence[str] | None = None) -> Response:
    """Rows as a CSV download (header from ``columns`` or the first row's keys)."""
    out = io.StringIO()
    names = list(columns or (rows[0].keys() if rows else []))
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in names})
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def json_response(data: Any, status_code: int = 200) -> JSONResponse:
    """JSON with NaN already cleaned to null (see :func:`trapline.web.queries.clean`)."""
    return JSONResponse(data, status_code=status_code)


def with_query(request: Request, **changes: Any) -> str:
    """The current URL's path and query with some parameters changed (None removes)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


def suffixed(request: Request, fmt: str, **changes: Any) -> str:
    """The current page's URL in another format (``.json`` / ``.csv`` suffix)."""
    params = {k: v for k, v in request.query_params.items() if k != "format"}
    params.update({k: str(v) for k, v in changes.items() if v is not None})
    query = urlencode(params)
    path = request.url.path.rstrip("/") or "/index"
    return f"{path}.{fmt}" + (f"?{query}" if query else "")


def render(request: Request, fmt: str, template: str, data: dict[str, Any],
           table: list[dict] | None = None, name: str = "table", **context: Any) -> Response:
    """The page as HTML, its data as JSON, or its main table as CSV."""
    if fmt == "json":
        return json_response(data)
    if fmt == "csv":
        if table is None:
            raise HTTPException(404, "this page has no table to download as CSV")
        return csv_response(table, name)
    root = root_path(request)
    ctx = {"data": data, "has_plotly": request.app.state.has_plotly,
           "json_url": suffixed(request, "json"), "csv_url": suffixed(request, "csv")
           if table is not None else None, "with_query": lambda **kw: with_query(request, **kw),
           "path": request.url.path[len(root):] or "/", "root": root}
    ctx.update(context)
    return request.app.state.templates.TemplateResponse(request, template, ctx)


def root_path(request: Request) -> str:
    """The path prefix of this run's pages: '' alone, ``/runs/NAME`` when one server
    serves several runs (:func:`trapline.web.app.create_runs_app`)."""
    return request.scope.get("root_path", "").rstrip("/")
