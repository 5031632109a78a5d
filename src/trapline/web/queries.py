"""Read queries of the web interface: SQLAlchemy ``select()`` on the storage models.

Every list query is paginated in the database (LIMIT/OFFSET on an ordered select),
sorts only by whitelisted columns and never loads a whole table. Values come back as
plain dicts (floats, ints, strings, None) ready for templates and JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, and_, case, func, select

from trapline.geometry import separation_deg
from trapline.storage import models
from trapline.storage.export import iso_utc
from trapline.storage.healpix import cone_where

I, S, M = models.Image, models.Source, models.Measurement
B, C, MON = models.BandStatistics, models.Candidate, models.Monitor
BIN = models.LightcurveBin

MAX_PER_PAGE = 500
OVERVIEW_IMAGES = 5000  # newest images plotted on the overview
ETAV_LIMIT = 200_000  # points of the eta-V plot


@dataclass
class Page:
    """One page of a list: rows, the total count and the paging parameters."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    sort: str
    order: str
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "total": self.total, "page": self.page,
            "per_page": self.per_page, "pages": self.pages, "sort": self.sort,
            "order": self.order, "filters": self.filters,
        }  # fmt: skip


def clean(value: Any) -> Any:
    """A JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def mjd_iso(mjd: float | None) -> str | None:
    """MJD to ISO 8601 UTC (milliseconds), None when missing."""
    if mjd is None or not math.isfinite(mjd):
        return None
    return str(iso_utc(np.array([mjd]))[0])


def _rows(conn: Connection, stmt: Select, times: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of ``stmt`` as dicts; each MJD column in ``times`` gets an ISO twin
    (``time_mjd`` -> ``time``, ``first_time_mjd`` -> ``first_time``)."""
    out = []
    for row in conn.execute(stmt).mappings():
        d = {k: clean(v) for k, v in row.items()}
        for t in times:
            d[t.removesuffix("_mjd")] = mjd_iso(d.get(t))
        out.append(d)
    return out


def _page(conn: Connection, stmt: Select, sorts: dict[str, Any], sort: str, order: str,
          page: int, per_page: int, tiebreak: Sequence[Any], times: Sequence[str] = (),
          filters: dict[str, Any] | None = None) -> Page:
    """Count and fetch one page of ``stmt`` sorted by the whitelisted ``sort``."""
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    sort = sort if sort in sorts else next(iter(sorts))
    order = "asc" if order == "asc" else "desc"
    total = conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar()
    key = sorts[sort]
    direction = key.asc() if order == "asc" else key.desc()
    nulls = case((key.is_(None), 1), else_=0)  # missing values last either way
    stmt = stmt.order_by(nulls, direction, *tiebreak).limit(per_page)
    stmt = stmt.offset((page - 1) * per_page)
    return Page(_rows(conn, stmt, times), int(total or 0), page, per_page, sort, order,
                filters or {})


# --- overview ---------------------------------------------------------------------------


def overview(conn: Connection) -> dict[str, Any]:
    """Counts of images, sources, candidates and monitors; reject reasons; per band
    image counts; the newest images' time, band, rms and QC outcome for the plots."""
    n_images = conn.execute(select(func.count()).select_from(I)).scalar() or 0
    n_accepted = conn.execute(select(func.count()).where(I.accepted.is_(True))).scalar() or 0
    reasons = conn.execute(
        select(I.reject_reason, func.count()).where(I.accepted.is_(False))
        .group_by(I.reject_reason).order_by(func.count().desc())
    ).all()
    bands = conn.execute(
        select(I.band, func.count(), func.min(I.freq_hz), func.sum(case((I.accepted, 1), else_=0)))
        .group_by(I.band).order_by(I.band)
    ).all()
    candidates = conn.execute(select(C.kind, func.count()).group_by(C.kind)).all()
    span = conn.execute(select(func.min(I.time_mjd), func.max(I.time_mjd))).one()
    recent = (
        select(I.image_id, I.time_mjd, I.band, I.rms, I.accepted, I.reject_reason, I.n_blind)
        .order_by(I.image_id.desc()).limit(OVERVIEW_IMAGES)
    )
    return {
        "images": {"total": int(n_images), "accepted": int(n_accepted),
                   "rejected": int(n_images - n_accepted)},
        "reject_reasons": [{"reason": r or "(none)", "count": int(n)} for r, n in reasons],
        "bands": [{"band": int(b), "images": int(n), "freq_hz": clean(f), "accepted": int(a or 0)}
                  for b, n, f, a in bands],
        "sources": int(conn.execute(select(func.count()).select_from(S)).scalar() or 0),
        "candidates": {k: int(n) for k, n in candidates},
        "monitors": int(conn.execute(select(func.count()).select_from(MON)).scalar() or 0),
        "first_time": mjd_iso(span[0]), "last_time": mjd_iso(span[1]),
        "recent_images": _rows(conn, recent, ["time_mjd"])[::-1],
    }


# --- images -----------------------------------------------------------------------------

IMAGE_SORTS = {
    "time": I.time_mjd, "image_id": I.image_id, "band": I.band, "rms": I.rms,
    "n_blind": I.n_blind, "accepted": I.accepted, "freq_hz": I.freq_hz,
}  # fmt: skip


def images(conn: Connection, page: int = 1, per_page: int = 50, sort: str = "time",
           order: str = "desc", band: int | None = None,
           accepted: bool | None = None) -> Page:
    """A page of images, sorted and optionally filtered by band and QC outcome."""
    stmt = select(I.image_id, I.path, I.time_mjd, I.freq_hz, I.band, I.rms, I.bmaj_deg,
                  I.bmin_deg, I.accepted, I.reject_reason, I.n_blind, I.n_forced, I.n_monitor)
    if band is not None:
        stmt = stmt.where(I.band == band)
    if accepted is not None:
        stmt = stmt.where(I.accepted.is_(accepted))
    return _page(conn, stmt, IMAGE_SORTS, sort, order, page, per_page, [I.image_id],
                 ["time_mjd"], {"band": band, "accepted": accepted})


def image(conn: Connection, image_id: int) -> dict[str, Any] | None:
    """One image with all its columns, None when unknown."""
    stmt = select(*I.__table__.columns).where(I.image_id == image_id).limit(1)
    rows = _rows(conn, stmt, ["time_mjd"])
    if not rows:
        return None
    return rows[0]


MEASUREMENT_SORTS = {
    "time": M.time_mjd, "measurement_id": M.measurement_id, "source_id": M.source_id,
    "int_flux": M.int_flux, "peak_flux": M.peak_flux, "snr": M.snr, "band": M.band,
    "kind": M.kind,
}  # fmt: skip
MEASUREMENT_COLUMNS = [
    M.measurement_id, M.source_id, M.image_id, M.kind, M.time_mjd, M.band, M.ra, M.dec,
    M.ra_err, M.dec_err, M.peak_flux, M.peak_flux_err, M.int_flux, M.int_flux_err, M.snr,
]


def measurements(conn: Connection, *, image_id: int | None = None,
                 source_id: int | None = None, page: int = 1, per_page: int = 100,
                 sort: str = "time", order: str = "asc") -> Page:
    """A page of the measurements of one image or one source."""
    stmt = select(*MEASUREMENT_COLUMNS)
    if image_id is not None:
        stmt = stmt.where(M.image_id == image_id)
    if source_id is not None:
        stmt = stmt.where(M.source_id == source_id)
    return _page(conn, stmt, MEASUREMENT_SORTS, sort, order, page, per_page,
                 [M.measurement_id], ["time_mjd"])


def image_positions(conn: Connection, image_id: int, limit: int = 5000) -> list[dict]:
    """Positions and kinds of an image's measurements (for the thumbnail overlay)."""
    stmt = select(M.source_id, M.ra, M.dec, M.kind).where(M.image_id == image_id).limit(limit)
    return _rows(conn, stmt)


def image_path(conn: Connection, image_id: int) -> str | None:
    """The stored file path of an image."""
    return conn.execute(select(I.path).where(I.image_id == image_id)).scalar()


# --- sources ----------------------------------------------------------------------------

MEAN_FLUX = B.swf_int / func.nullif(B.sw_int, 0)
SOURCE_COLUMNS = [
    S.source_id, S.ra, S.dec, S.ra_err, S.dec_err, S.first_time_mjd, S.last_time_mjd,
    S.n_blind, S.n_forced, S.is_monitor, B.band, B.n, MEAN_FLUX.label("mean_int_flux"),
    B.eta_int, B.v_int, B.eta_peak, B.v_peak, B.max_snr,
]
SOURCE_SORTS = {
    "source_id": S.source_id, "ra": S.ra, "dec": S.dec, "n": B.n, "band": B.band,
    "mean_int_flux": MEAN_FLUX, "eta_int": B.eta_int, "v_int": B.v_int,
    "max_snr": B.max_snr, "first_time": S.first_time_mjd, "n_blind": S.n_blind,
}  # fmt: skip


@dataclass
class SourceFilter:
    """Filters of the sources list; None means no limit."""

    band: int | None = None
    flux_min: float | None = None
    flux_max: float | None = None
    eta_min: float | None = None
    eta_max: float | None = None
    v_min: float | None = None
    v_max: float | None = None
    n_min: int | None = None
    ra: float | None = None
    dec: float | None = None
    radius: float | None = None

    def where(self) -> list[Any]:
        """SQL conditions of the filters (the cone as HEALPix ranges, a superset)."""
        w: list[Any] = []
        limits = [
            (B.band, self.band, None), (MEAN_FLUX, self.flux_min, self.flux_max),
            (B.eta_int, self.eta_min, self.eta_max), (B.v_int, self.v_min, self.v_max),
            (B.n, self.n_min, None),
        ]  # fmt: skip
        for column, lo, hi in limits:
            if column is B.band and lo is not None:
                w.append(B.band == lo)
                continue
            if lo is not None:
                w.append(column >= lo)
            if hi is not None:
                w.append(column <= hi)
        if self.has_cone:
            w.append(cone_where(self.ra, self.dec, self.radius))
        return w

    @property
    def has_cone(self) -> bool:
        return None not in (self.ra, self.dec, self.radius) and self.radius > 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


MAX_CONE_IDS = 20_000  # larger cones filter on the HEALPix ranges only (a superset)


def _cone_ids(conn: Connection, filt: SourceFilter) -> dict[int, float]:
    """Source ids within the filter's cone and their distances (deg): HEALPix index
    ranges in SQL, then the exact angular distance in numpy."""
    stmt = select(S.source_id, S.ra, S.dec).where(cone_where(filt.ra, filt.dec, filt.radius))
    rows = conn.execute(stmt).all()
    if not rows:
        return {}
    ids, ra, dec = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    dist = separation_deg(filt.ra, filt.dec, ra, dec)
    keep = dist <= filt.radius
    return dict(zip(ids[keep].astype(np.int64).tolist(), dist[keep].tolist(), strict=True))


def sources(conn: Connection, filt: SourceFilter, page: int = 1, per_page: int = 50,
            sort: str = "source_id", order: str = "asc") -> Page:
    """A page of (source, band) rows with variability, filtered, sorted and paged in SQL.

    A position filter first finds the source ids in the cone (HEALPix ranges plus the
    exact distance), then restricts the paged query to them."""
    where = filt.where()
    distances: dict[int, float] = {}
    if filt.has_cone:
        distances = _cone_ids(conn, filt)
        if len(distances) <= MAX_CONE_IDS:
            where = where[:-1] + [S.source_id.in_(list(distances))]
    stmt = select(*SOURCE_COLUMNS).join(B, B.source_id == S.source_id).where(*where)
    result = _page(conn, stmt, SOURCE_SORTS, sort, order, page, per_page,
                   [S.source_id, B.band], ["first_time_mjd", "last_time_mjd"], filt.as_dict())
    if filt.has_cone:
        for r in result.rows:
            r["distance_deg"] = distances.get(r["source_id"])
    return result


def source(conn: Connection, source_id: int) -> dict[str, Any] | None:
    """One source with its variability per band and monitor entries."""
    rows = _rows(conn, select(*S.__table__.columns).where(S.source_id == source_id),
                 ["first_time_mjd", "last_time_mjd"])
    if not rows:
        return None
    out = rows[0]
    out["bands"] = _rows(conn, select(B.band, B.n, MEAN_FLUX.label("mean_int_flux"), B.eta_int,
                                      B.v_int, B.eta_peak, B.v_peak, B.max_snr, B.misses,
                                      B.vs_int, B.m_int)
                         .where(B.source_id == source_id).order_by(B.band))
    alerts = select(*C.__table__.columns).where(C.source_id == source_id)
    out["candidates"] = _rows(conn, alerts.order_by(C.candidate_id.desc()), ["time_mjd"])
    # One-to-many splits: the source this lightcurve forked from, and those forked from it.
    F = models.SourceFork
    fork = select(F.source_id, F.parent_id, F.image_id, I.time_mjd).join(
        I, I.image_id == F.image_id)
    parents = _rows(conn, fork.where(F.source_id == source_id), ["time_mjd"])
    out["forked_from"] = parents[0] if parents else None
    out["forks"] = _rows(conn, fork.where(F.parent_id == source_id).order_by(F.source_id),
                         ["time_mjd"])
    return out


def image_candidates(conn: Connection, image_id: int) -> list[dict[str, Any]]:
    """The candidates decided in an image, vetoed and rejected new detections included
    (kind 'new-rejected', with their reason)."""
    stmt = select(*C.__table__.columns).where(C.image_id == image_id).order_by(C.candidate_id)
    return _rows(conn, stmt, ["time_mjd"])


def resolutions(conn: Connection, source_id: int) -> list[float]:
    """Bin widths (s) stored for a source's lightcurve."""
    stmt = select(BIN.resolution_s).where(BIN.source_id == source_id).distinct()
    return sorted(float(r) for (r,) in conn.execute(stmt))


def cutout_images(conn: Connection, source_id: int, newest: int = 4) -> list[dict]:
    """The images to vet a source in, each with its ``labels``: the last earlier image
    its precovery fit was made on (before detection), its first detection (earliest
    blind measurement), its peak (brightest measurement, peak flux) and the
    ``newest`` images it was measured in; an image with several roles is listed once."""
    base = (select(M.image_id, M.band, M.kind, M.time_mjd, M.peak_flux, M.int_flux, I.path)
            .join(I, I.image_id == M.image_id).where(M.source_id == source_id))
    picks = [
        ("before detection", base.where(M.kind == "precovery")
         .order_by(M.time_mjd.desc(), M.band).limit(1)),
        ("first detection", base.where(M.kind == "blind").order_by(M.time_mjd, M.band).limit(1)),
        ("peak", base.where(M.peak_flux.is_not(None)).order_by(M.peak_flux.desc()).limit(1)),
        ("newest", base.order_by(M.time_mjd.desc(), M.band).limit(newest)),
    ]
    out: dict[int, dict] = {}
    for label, stmt in picks:
        for row in _rows(conn, stmt, ["time_mjd"]):
            out.setdefault(row["image_id"], {**row, "labels": []})["labels"].append(label)
    return sorted(out.values(), key=lambda r: (r["time_mjd"] is None, r["time_mjd"]))


def source_position(conn: Connection, source_id: int) -> tuple[float, float] | None:
    row = conn.execute(select(S.ra, S.dec).where(S.source_id == source_id)).first()
    return (float(row[0]), float(row[1])) if row else None


# --- eta-V ------------------------------------------------------------------------------


def etav(conn: Connection, band: int | None = None, limit: int = ETAV_LIMIT) -> dict[str, list]:
    """Columns of the eta-V plane (integrated flux) for sources with both values > 0."""
    stmt = select(B.source_id, B.band, B.eta_int, B.v_int, B.n).where(
        and_(B.eta_int > 0, B.v_int > 0))
    if band is not None:
        stmt = stmt.where(B.band == band)
    stmt = stmt.order_by(B.source_id, B.band).limit(limit)
    cols: dict[str, list] = {"source_id": [], "band": [], "eta": [], "v": [], "n": []}
    for sid, b, eta, v, n in conn.execute(stmt):
        cols["source_id"].append(int(sid))
        cols["band"].append(int(b))
        cols["eta"].append(clean(float(eta)))
        cols["v"].append(clean(float(v)))
        cols["n"].append(int(n))
    return cols


def bands(conn: Connection) -> list[int]:
    """Bands present in the run."""
    return [int(b) for (b,) in conn.execute(select(I.band).distinct().order_by(I.band))]


# --- candidates and monitors --------------------------------------------------------------

CANDIDATE_SORTS = {
    "time": C.time_mjd, "candidate_id": C.candidate_id, "significance": C.significance,
    "source_id": C.source_id, "flux": C.flux,
}  # fmt: skip


def candidates(conn: Connection, page: int = 1, per_page: int = 50, sort: str = "time",
               order: str = "desc", kind: str | None = None) -> Page:
    """A page of candidates, newest first by default, optionally of one kind."""
    stmt = select(C.candidate_id, C.source_id, C.image_id, C.kind, C.level, C.band,
                  C.time_mjd, C.significance, C.flux, C.limit, S.ra, S.dec)
    stmt = stmt.join(S, S.source_id == C.source_id)
    if kind:
        stmt = stmt.where(C.kind == kind)
    return _page(conn, stmt, CANDIDATE_SORTS, sort, order, page, per_page,
                 [C.candidate_id.desc()], ["time_mjd"], {"kind": kind})


def monitors(conn: Connection) -> list[dict[str, Any]]:
    """The monitoring list, oldest first."""
    stmt = select(MON.monitor_id, MON.name, MON.ra, MON.dec, MON.source_id, MON.added_mjd)
    return _rows(conn, stmt.order_by(MON.monitor_id), ["added_mjd"])


def stamps(conn: Connection, source_id: int) -> list[dict[str, Any]]:
    """The cutouts kept with a source's candidate (without their pixels)."""
    st = models.CandidateStamp
    stmt = (select(st.stamp_id, st.label, st.band, st.time_mjd, st.image_key, st.size)
            .where(st.source_id == source_id).order_by(st.time_mjd, st.stamp_id))
    return _rows(conn, stmt, ["time_mjd"])


def stamp_pixels(conn: Connection, source_id: int, stamp_id: int) -> tuple[bytes, int] | None:
    st = models.CandidateStamp
    row = conn.execute(select(st.pixels, st.size).where(
        st.stamp_id == stamp_id, st.source_id == source_id)).first()
    return None if row is None else (bytes(row[0]), int(row[1]))
