"""Routes of the web interface: each page as HTML (Jinja2), JSON and, for tables, CSV.

Views only parse parameters, call :mod:`trapline.web.queries` inside one read
connection and hand the result to :func:`render`; writes (the monitoring list) go
through :mod:`trapline.web.monitors`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from markupsafe import Markup
from sqlalchemy import Connection

from trapline.pipeline.thresholds import derived_thresholds, fit_log_gaussian
from trapline.positions import PositionError, parse_angle, parse_position, sexagesimal
from trapline.storage import export, runinfo
from trapline.storage.export import SIGNIFICANCE
from trapline.storage.lightcurves import lightcurve
from trapline.web import pictures, queries
from trapline.web.formats import Format, csv_response, json_response, render, root_path, with_query
from trapline.web.monitors import router as monitors_router

router = APIRouter()
router.include_router(monitors_router)

FormatQ = Annotated[Format, Query(alias="format", description="html, json or csv")]
PageQ = Annotated[int, Query(ge=1, le=10**7, description="page number, from 1")]
PerPageQ = Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE, description="rows per page")]
OrderQ = Annotated[str, Query(pattern="^(asc|desc)$")]
BandQ = Annotated[int | None, Query(ge=0, le=10**6)]
IdPath = Annotated[int, Path(ge=0, le=2**63 - 1, description="database id")]


def finite(**kw: Any) -> Any:
    """A float query parameter that refuses NaN and infinity."""
    return Query(allow_inf_nan=False, **kw)


NAV = [
    ("/", "Overview"), ("/images", "Images"), ("/sources", "Sources"), ("/etav", "η–V"),
    ("/candidates", "Candidates"), ("/live", "Live"), ("/cone", "Cone search"),
    ("/monitors", "Monitoring"), ("/api", "API"),
]  # fmt: skip

TABLE_DOWNLOADS = export.EXPORTS


def template_globals(settings) -> dict[str, Any]:
    """Values every template sees."""
    return {"nav": NAV, "title": settings.title, "downloads": TABLE_DOWNLOADS,
            "writes_enabled": settings.token is not None}


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def _arcsec(value: Any) -> str:
    return "–" if value is None else f"{value * 3600:.2f}″"


def template_filters() -> dict[str, Any]:
    """Jinja2 filters: numbers, arc seconds, JSON for inline scripts."""
    return {"num": _num, "arcsec": _arcsec, "tojs": _tojs,
            "sexa": lambda ra, dec: "–" if ra is None or dec is None else sexagesimal(ra, dec)}


def _tojs(value: Any) -> Markup:
    """JSON for an inline script (no HTML escaping, ``</`` broken up)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("</", "<\\/").replace("<!--", "<\\!--"))


def connection(request: Request):
    """One read connection per request (a dependency)."""
    with request.app.state.settings.engine.connect() as conn:
        yield conn


Conn = Annotated[Connection, Depends(connection)]


def image_file(request: Request, stored: str | None) -> str | None:
    """The file of a stored image path: absolute as stored, or (older databases kept
    paths relative to the folder the run started in) under ``--image-root``."""
    root = request.app.state.settings.image_root
    if stored is None or root is None or os.path.isabs(stored):
        return stored
    return os.path.join(root, stored)


def drawn(draw, *args: Any) -> bytes | None:
    """A picture from :mod:`trapline.web.pictures`; 503 while too many are drawn."""
    try:
        return draw(*args)
    except pictures.Busy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "2"}) from None


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")


# --- pages ------------------------------------------------------------------------------


@router.get("/", summary="Overview of the run")
@router.get("/index", include_in_schema=False)
def overview(request: Request, conn: Conn, format: FormatQ = "html") -> Response:
    data = queries.overview(conn)
    config, stored = runinfo.run_config(conn)
    data["run"] = {"version": runinfo.software_version(), "config": config.to_dict(),
                   "config_stored": stored, "processing": runinfo.processing(conn)}
    return render(request, format, "overview.html", data, data["recent_images"], "images")


@router.get("/images", summary="Images, sorted and paginated")
def images(request: Request, conn: Conn, format: FormatQ = "html", page: PageQ = 1,
           per_page: PerPageQ = 50, sort: str = "time", order: OrderQ = "desc",
           band: BandQ = None, accepted: bool | None = None) -> Response:
    result = queries.images(conn, page, per_page, sort, order, band, accepted)
    return render(request, format, "images.html", result.as_json(), result.rows, "images",
                  page=result, sorts=list(queries.IMAGE_SORTS), bands=queries.bands(conn))


@router.get("/images/{image_id}", summary="One image: metadata, QC and its measurements")
def image(request: Request, conn: Conn, image_id: IdPath, format: FormatQ = "html",
          page: PageQ = 1, per_page: PerPageQ = 100, sort: str = "source_id",
          order: OrderQ = "asc") -> Response:
    meta = queries.image(conn, image_id)
    if meta is None:
        raise not_found(f"image {image_id}")
    found = queries.measurements(conn, image_id=image_id, page=page, per_page=per_page,
                                 sort=sort, order=order)
    candidates = queries.image_candidates(conn, image_id)
    data = {"image": meta, "candidates": candidates, "measurements": found.as_json()}
    return render(request, format, "image.html", data, found.rows, f"image{image_id}",
                  image=meta, candidates=candidates, page=found,
                  sorts=list(queries.MEASUREMENT_SORTS))


@router.get("/images/{image_id}/thumbnail.png", summary="PNG of the image, sources circled",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def thumbnail(request: Request, conn: Conn, image_id: IdPath,
              size: Annotated[int, Query(ge=64, le=2048)] = 512) -> Response:
    path = image_file(request, queries.image_path(conn, image_id))
    if path is None:
        raise not_found(f"image {image_id}")
    png = drawn(pictures.thumbnail, path, queries.image_positions(conn, image_id), size)
    if png is None:
        raise not_found(f"picture of image {image_id} (file unreadable or Pillow missing)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


RaQ = Annotated[str | None, Query(max_length=40, description=(
    "RA: degrees or sexagesimal hours (10:00:06)"))]
DecQ = Annotated[str | None, Query(max_length=40, description=(
    "Dec: degrees or sexagesimal (+30:12:00)"))]
PosQ = Annotated[str | None, Query(max_length=80, description=(
    "the whole position instead of ra and dec: degrees, sexagesimal or a J-name"))]


def typed_position(ra: str | None, dec: str | None,
                   pos: str | None) -> tuple[float, float] | None:
    """(ra, dec) in degrees from the typed ``pos`` or ``ra`` and ``dec`` (any form of
    :mod:`trapline.positions`), None when not given; 422 when unreadable."""
    try:
        if pos:
            return parse_position(pos)
        if ra and dec:
            return parse_angle(ra, "ra"), parse_angle(dec, "dec")
    except PositionError as exc:
        raise HTTPException(422, str(exc)) from None
    if ra or dec:
        raise HTTPException(422, "give both ra and dec, or the whole position as pos")
    return None


def source_filter(
    band: BandQ = None,
    flux_min: Annotated[float | None, finite(description="mean int. flux >= (Jy)")] = None,
    flux_max: Annotated[float | None, finite(description="mean int. flux <= (Jy)")] = None,
    eta_min: Annotated[float | None, finite()] = None,
    eta_max: Annotated[float | None, finite()] = None,
    v_min: Annotated[float | None, finite()] = None,
    v_max: Annotated[float | None, finite()] = None,
    n_min: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    ra: RaQ = None, dec: DecQ = None, pos: PosQ = None,
    radius: Annotated[float | None, finite(gt=0, le=180, description="deg")] = None,
) -> queries.SourceFilter:
    """The sources-list filters from the query string."""
    ra_deg, dec_deg = typed_position(ra, dec, pos) or (None, None)
    return queries.SourceFilter(band, flux_min, flux_max, eta_min, eta_max, v_min, v_max,
                                n_min, ra_deg, dec_deg, radius)


@router.get("/sources", summary="Sources per band with variability, filtered and sorted")
def sources(request: Request, conn: Conn,
            filt: Annotated[queries.SourceFilter, Depends(source_filter)],
            format: FormatQ = "html", page: PageQ = 1, per_page: PerPageQ = 50,
            sort: str = "source_id", order: OrderQ = "asc") -> Response:
    result = queries.sources(conn, filt, page, per_page, sort, order)
    return render(request, format, "sources.html", result.as_json(), result.rows, "sources",
                  page=result, sorts=list(queries.SOURCE_SORTS), filt=filt,
                  bands=queries.bands(conn))


ResolutionQ = Annotated[float | None, finite(gt=0, le=1e9, description="re-bin to (s)")]


def _lightcurve(conn: Connection, source_id: int, band: int | None,
                resolution: float | None) -> list[dict[str, Any]]:
    try:
        frame = lightcurve(conn, source_id, band, resolution)
    except TypeError:
        # storage.lightcurves cannot yet re-bin a source without any stored bins
        # (object-dtype empty frame); show the points as stored instead.
        frame = lightcurve(conn, source_id, band, None)
    return [{k: queries.clean(v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


@router.get("/sources/{source_id}", summary="One source: lightcurve, measurements, cutouts")
def source(request: Request, conn: Conn, source_id: IdPath, format: FormatQ = "html",
           resolution: ResolutionQ = None, page: PageQ = 1, per_page: PerPageQ = 100,
           sort: str = "time", order: OrderQ = "asc") -> Response:
    found = queries.source(conn, source_id)
    if found is None:
        raise not_found(f"source {source_id}")
    points = _lightcurve(conn, source_id, None, resolution)
    meas = queries.measurements(conn, source_id=source_id, page=page, per_page=per_page,
                                sort=sort, order=order)
    cutouts = queries.cutout_images(conn, source_id) if pictures.pillow_available() else []
    root = root_path(request)
    data = {"source": found, "lightcurve": points, "resolutions": queries.resolutions(
        conn, source_id), "resolution": resolution, "measurements": meas.as_json(),
        "cutouts": [{"image_id": c["image_id"], "band": c["band"], "time": c["time"],
                     "kind": c["kind"], "peak_flux": c["peak_flux"], "labels": c["labels"],
                     "url": f"{root}/sources/{source_id}/cutout/{c['image_id']}.png"}
                    for c in cutouts],
        "stamps": [{**st, "url": f"{root}/sources/{source_id}/stamp/{st['stamp_id']}.png"}
                   for st in queries.stamps(conn, source_id)]}
    return render(request, format, "source.html", data, meas.rows, f"source{source_id}",
                  source=found, page=meas, sorts=list(queries.MEASUREMENT_SORTS))


@router.get("/sources/{source_id}/lightcurve",
            summary="One source's lightcurve: raw points and bins merged")
def source_lightcurve(request: Request, conn: Conn, source_id: IdPath, format: FormatQ = "json",
                      band: BandQ = None, resolution: ResolutionQ = None) -> Response:
    if queries.source_position(conn, source_id) is None:
        raise not_found(f"source {source_id}")
    if format == "html":
        return RedirectResponse(with_query(request, format=None).replace(
            "/lightcurve", "", 1) + "#lightcurve", status_code=303)
    points = _lightcurve(conn, source_id, band, resolution)
    if format == "csv":
        return csv_response(points, f"lightcurve{source_id}")
    return json_response({"source_id": source_id, "band": band, "resolution": resolution,
                          "points": points})


@router.get("/sources/{source_id}/cutout/{image_id}.png", response_class=Response,
            summary="PNG cutout of an image around a source",
            responses={200: {"content": {"image/png": {}}}})
def source_cutout(request: Request, conn: Conn, source_id: IdPath,
                  image_id: IdPath) -> Response:
    position = queries.source_position(conn, source_id)
    path = image_file(request, queries.image_path(conn, image_id))
    if position is None or path is None:
        raise not_found("source or image")
    png = drawn(pictures.cutout, path, *position)
    if png is None:
        raise not_found("cutout (file unreadable, position off the image or Pillow missing)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/sources/{source_id}/stamp/{stamp_id}.png", response_class=Response,
            summary="PNG of a cutout kept with a source's candidate (no image file needed)",
            responses={200: {"content": {"image/png": {}}}})
def source_stamp(request: Request, conn: Conn, source_id: IdPath, stamp_id: IdPath) -> Response:
    found = queries.stamp_pixels(conn, source_id, stamp_id)
    if found is None:
        raise not_found(f"stamp {stamp_id} of source {source_id}")
    png = drawn(pictures.stamp, *found)
    if png is None:
        raise not_found("stamp picture (Pillow missing)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


def derived_fit(cols: dict[str, list], min_points: int, n_sigma: float) -> dict | None:
    """Sigma-clipped Gaussian fits to log10 eta and log10 V of the sources with at least
    ``min_points`` points, and the thresholds mean + ``n_sigma`` sigma (Rowlinson et
    al. 2019); None when too few sources to fit."""
    enough = np.asarray(cols["n"], int) >= min_points
    eta = np.asarray(cols["eta"], float)[enough]
    v = np.asarray(cols["v"], float)[enough]
    try:
        (mu_eta, sigma_eta), (mu_v, sigma_v) = fit_log_gaussian(eta), fit_log_gaussian(v)
        eta_thr, v_thr = derived_thresholds(eta, v, n_sigma)
    except ValueError:
        return None
    return {"n_sigma": n_sigma, "n_sources": int(enough.sum()),
            "log_eta": {"mu": mu_eta, "sigma": sigma_eta},
            "log_v": {"mu": mu_v, "sigma": sigma_v},
            "eta_threshold": eta_thr, "v_threshold": v_thr}


@router.get("/etav", summary="The eta-V diagnostic plane (integrated flux)")
def etav(request: Request, conn: Conn, format: FormatQ = "html", band: BandQ = None,
         eta: Annotated[float | None, finite(gt=0, le=1e12, description=(
             "eta threshold (default: from 'use')"))] = None,
         v: Annotated[float | None, finite(gt=0, le=1e6, description=(
             "V threshold (default: from 'use')"))] = None,
         use: Annotated[str, Query(pattern="^(run|derived)$", description=(
             "default thresholds: the run's configuration or derived from the sources' "
             "distributions (mean + n_sigma sigma of log eta and log V)"))] = "run",
         n_sigma: Annotated[float, finite(gt=0, le=10, description=(
             "derived thresholds: this many sigma above the fitted mean"))] = 2.0
         ) -> Response:
    run = runinfo.thresholds(conn)
    cols = queries.etav(conn, band)
    fit = derived_fit(cols, run["min_points"], n_sigma)
    chosen = fit if use == "derived" and fit is not None else run
    eta = chosen["eta_threshold"] if eta is None else eta
    v = chosen["v_threshold"] if v is None else v
    if format == "html":  # the page fetches its points from the JSON twin
        return render(request, format, "etav.html", {}, None, bands=queries.bands(conn),
                      band=band, eta=eta, v=v, run=run, use=use, n_sigma=n_sigma)
    if format == "csv":
        rows = [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(),
                                                                         strict=True)]
        return csv_response(rows, "etav", list(cols))
    return json_response({"band": band, "use": use, "eta_threshold": eta, "v_threshold": v,
                          "run_thresholds": run, "derived": fit, **cols})


@router.get("/candidates", summary="Transient candidates, newest first")
def candidates(request: Request, conn: Conn, format: FormatQ = "html", page: PageQ = 1,
               per_page: PerPageQ = 50, sort: str = "time", order: OrderQ = "desc",
               kind: Annotated[str | None, Query(pattern="^(new|variable)$")] = None
               ) -> Response:
    result = queries.candidates(conn, page, per_page, sort, order, kind)
    data = {**result.as_json(), "thresholds": runinfo.thresholds(conn),
            "significance": SIGNIFICANCE}
    return render(request, format, "candidates.html", data, result.rows,
                  "candidates", page=result, sorts=list(queries.CANDIDATE_SORTS), kind=kind)


LIVE_POLL_S = 3.0  # how often the live page asks for new candidates (s)


@router.get("/live", summary="The newest candidates; the page polls this JSON to update")
def live(request: Request, conn: Conn, format: FormatQ = "html",
         limit: Annotated[int, Query(ge=1, le=500, description="candidates shown")] = 50
         ) -> Response:
    result = queries.candidates(conn, 1, limit, "time", "desc")
    rows = [{**r, "position": sexagesimal(r["ra"], r["dec"])
             if r["ra"] is not None and r["dec"] is not None else None} for r in result.rows]
    data = {"rows": rows, "total": result.total, "poll_s": LIVE_POLL_S,
            "significance": SIGNIFICANCE}
    return render(request, format, "live.html", data, rows, "live")


@router.get("/cone", summary="Sources within a radius of a position (HEALPix index)")
def cone(request: Request, conn: Conn, format: FormatQ = "html", ra: RaQ = None,
         dec: DecQ = None, pos: PosQ = None,
         radius: Annotated[float, finite(gt=0, le=10, description="deg")] = 0.1) -> Response:
    rows: list[dict[str, Any]] = []
    ra, dec = typed_position(ra, dec, pos) or (None, None)
    if ra is not None and dec is not None:
        frame = export.cone(conn, ra, dec, radius)
        rows = [{k: queries.clean(v) for k, v in r.items()}
                for r in frame.to_dict(orient="records")]
        for r in rows:
            for key, value in r.items():
                if value is not None and type(value).__name__ == "NAType":
                    r[key] = None
    data = {"ra": ra, "dec": dec, "radius": radius, "rows": rows, "total": len(rows),
            "position": sexagesimal(ra, dec) if ra is not None else None}
    return render(request, format, "cone.html", data, rows, "cone")


@router.get("/api", summary="The JSON API: every endpoint of the OpenAPI description")
def api(request: Request, format: FormatQ = "html") -> Response:
    spec = request.app.openapi()
    rows = [{"method": method.upper(), "path": path, "summary": op.get("summary", ""),
             "parameters": ", ".join(p["name"] for p in op.get("parameters", []))}
            for path, item in spec["paths"].items() for method, op in item.items()]
    return render(request, format, "api.html", {"endpoints": rows}, rows, "api")


@router.get("/download/{table}", summary="A whole stored table as CSV (default) or JSON")
def download(request: Request, table: str, format: FormatQ = "csv") -> Response:
    if table not in TABLE_DOWNLOADS:
        raise not_found(f"table {table!r}")
    engine = request.app.state.settings.engine

    def chunks():
        with engine.connect() as conn:
            first = True
            if format == "json":
                yield "["
            for frame in export.iter_chunks(conn, table, rows=50_000):
                if format == "json":
                    body = frame.to_json(orient="records")[1:-1]
                    if body:
                        yield ("" if first else ",") + body
                        first = False
                else:
                    yield frame.to_csv(index=False, header=first, lineterminator="\n")
                    first = False
            if format == "json":
                yield "]"

    kind = "application/json" if format == "json" else "text/csv; charset=utf-8"
    ext = "json" if format == "json" else "csv"
    return StreamingResponse(chunks(), media_type=kind, headers={
        "Content-Disposition": f'attachment; filename="{table}.{ext}"'})
