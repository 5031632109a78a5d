"""The monitoring list: view it, add and remove positions (writes need the token).

The token is configured with ``trapline serve --token`` or ``TRAPLINE_TOKEN``; without
one every write is refused (403). A request gives it as ``Authorization: Bearer
TOKEN``, an ``X-Trapline-Token`` header or, from the HTML form, a ``token`` field.
Writes go through :meth:`trapline.storage.Store.write_monitor` / ``remove_monitor``.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import select

from trapline.positions import NUMBER, parse_angle, parse_position
from trapline.storage import models
from trapline.web import queries
from trapline.web.errors import validation_details
from trapline.web.formats import Format, json_response, render, root_path

router = APIRouter()


class MonitorIn(BaseModel):
    """A position to add to the monitoring list: ``ra`` and ``dec`` in degrees or as
    sexagesimal text (RA in hours), or the whole ``position`` as one text (degrees,
    sexagesimal or a J-name, see :mod:`trapline.positions`)."""

    name: str = Field(min_length=1, max_length=200)
    ra: float = Field(ge=0, lt=360, allow_inf_nan=False, description="deg")
    dec: float = Field(ge=-90, le=90, allow_inf_nan=False, description="deg")
    source_id: int | None = Field(default=None, ge=0, le=2**62)

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        """Read a typed ``position`` or sexagesimal ``ra``/``dec`` into degrees."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        position = data.pop("position", None)
        if position:
            data["ra"], data["dec"] = parse_position(str(position))
        for axis in ("ra", "dec"):
            if isinstance(data.get(axis), str) and not NUMBER.match(data[axis].strip()):
                data[axis] = parse_angle(data[axis], axis)
        return data


def _given_token(request: Request, form: dict[str, str]) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-trapline-token") or form.get("token") or None


def check_token(request: Request, form: dict[str, str]) -> None:
    """Refuse the write: 403 without a configured token, 401 with a wrong one."""
    expected = request.app.state.settings.token
    if expected is None:
        raise HTTPException(403, "writes are disabled: start the server with --token "
                                 "or TRAPLINE_TOKEN")
    given = _given_token(request, form)
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a valid token is needed to change the monitoring list",
                            headers={"WWW-Authenticate": "Bearer"})


async def _body(request: Request) -> tuple[dict[str, Any], bool]:
    """The request body as a dict (JSON or an urlencoded form) and whether it was a
    form (then the answer is a redirect back to the HTML page)."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8", "replace"))), True
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"body must be JSON or an urlencoded form: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    return data, False


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON (Python's parser accepts them): refuse them."""
    raise ValueError(f"{name} is not a valid JSON number")


def _back(request: Request, message: str, error: bool = False) -> RedirectResponse:
    key = "error" if error else "message"
    return RedirectResponse(f"{root_path(request)}/monitors?{key}={quote(message)}",
                            status_code=303)


@router.get("/monitors", summary="The monitoring list")
def list_monitors(request: Request, format: Annotated[Format, Query(alias="format")] = "html",
                  message: Annotated[str | None, Query(max_length=300)] = None,
                  error: Annotated[str | None, Query(max_length=300)] = None) -> Response:
    with request.app.state.settings.engine.connect() as conn:
        rows = queries.monitors(conn)
    return render(request, format, "monitors.html", {"rows": rows, "total": len(rows)}, rows,
                  "monitors", message=message, error=error)


ADD_BODY = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": MonitorIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": {
            **MonitorIn.model_json_schema(),
            "properties": {**MonitorIn.model_json_schema()["properties"],
                           "token": {"type": "string"}}}},
    }},
}  # fmt: skip


@router.post("/monitors", summary="Add a position to the monitoring list (token)",
             status_code=201, openapi_extra=ADD_BODY,
             responses={401: {"description": "wrong token"},
                        403: {"description": "writes disabled"}})
async def add_monitor(request: Request) -> Response:
    body, is_form = await _body(request)
    refused = _refused(request, body, is_form)
    if refused is not None:
        return refused
    try:
        entry = MonitorIn.model_validate({k: v for k, v in body.items() if k != "token"
                                          and (v != "" or not is_form)})
    except ValidationError as exc:
        if is_form:
            return _back(request, "invalid position: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), True)
        raise HTTPException(422, validation_details(exc.errors())) from None
    if entry.source_id is not None and not _source_exists(request, entry.source_id):
        if is_form:
            return _back(request, f"no source {entry.source_id}", True)
        raise HTTPException(422, f"no source {entry.source_id}")
    monitor_id = request.app.state.settings.store().write_monitor(
        entry.name, entry.ra, entry.dec, entry.source_id)
    if is_form:
        return _back(request, f"added {entry.name} as monitor {monitor_id}")
    return json_response({"monitor_id": monitor_id, **entry.model_dump()}, status_code=201)


def _refused(request: Request, body: dict, is_form: bool) -> Response | None:
    """None when the token allows writing; for a form, the page saying why not (an
    API client gets the HTTP error raised)."""
    try:
        check_token(request, body)
    except HTTPException as exc:
        if is_form:
            return _back(request, str(exc.detail), error=True)
        raise
    return None


def _source_exists(request: Request, source_id: int) -> bool:
    with request.app.state.settings.engine.connect() as conn:
        stmt = select(models.Source.source_id).where(models.Source.source_id == source_id)
        return conn.execute(stmt).first() is not None


async def _remove(request: Request, monitor_id: int) -> Response:
    body, is_form = await _body(request) if await request.body() else ({}, False)
    refused = _refused(request, body, is_form)
    if refused is not None:
        return refused
    removed = request.app.state.settings.store().remove_monitor(monitor_id)
    if is_form:
        return _back(request, f"removed monitor {monitor_id}" if removed else
                     f"no monitor {monitor_id}", error=not removed)
    if not removed:
        raise HTTPException(404, f"monitor {monitor_id} not found")
    return json_response({"removed": monitor_id})


MonitorId = Annotated[int, Path(ge=0, le=2**63 - 1)]


@router.delete("/monitors/{monitor_id}", summary="Remove a monitoring-list entry (token)",
               responses={401: {"description": "wrong token"},
                          403: {"description": "writes disabled"}})
async def delete_monitor(request: Request, monitor_id: MonitorId) -> Response:
    return await _remove(request, monitor_id)


@router.post("/monitors/{monitor_id}/delete", include_in_schema=False)
async def delete_monitor_form(request: Request, monitor_id: MonitorId) -> Response:
    """The HTML form's way to remove an entry (forms cannot send DELETE)."""
    return await _remove(request, monitor_id)
