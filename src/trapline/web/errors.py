"""Error answers: an HTML page for a browser, JSON for an API client.

A request wants JSON when it asked for the JSON (or CSV) twin (``.json`` suffix,
``?format=json``) or does not accept HTML (``Accept`` without ``text/html``, as
``curl`` and ``httpx`` send). The JSON body is always encodable: validation errors are
reported without the offending input (which may be NaN or infinity).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trapline.web.formats import json_response, render

TITLES = {400: "Bad request", 401: "Not authorised", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 422: "Invalid input", 503: "Busy"}


def wants_html(request: Request) -> bool:
    """Whether the error should be an HTML page (a browser asking for a page)."""
    if request.query_params.get("format") in ("json", "csv"):
        return False
    return "text/html" in request.headers.get("accept", "")


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as JSON-safe dicts: where, what and the error type; the
    input itself is left out (it may be NaN, infinity or large)."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


def _summary(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail)
    return str(detail)


def error_response(request: Request, status: int, detail: Any,
                   headers: dict[str, str] | None = None) -> Response:
    """The error as an HTML page or as JSON ``{"detail": ...}``."""
    if not wants_html(request):
        return _with_headers(json_response({"detail": detail}, status_code=status),
                             headers or {})
    response = render(request, "html", "error.html", {"detail": detail}, status=status,
                      heading=TITLES.get(status, f"Error {status}"), message=_summary(detail))
    response.status_code = status
    return _with_headers(response, headers or {})


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    for key, value in headers.items():
        response.headers[key] = value
    return response


def install(app: FastAPI) -> None:
    """Register the handlers for HTTP errors and invalid requests."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, validation_details(exc.errors()))
