"""Lightcurves merged across resolutions: raw measurements and time bins as one
continuous series, each point saying its resolution, and variability from it.

A bin point carries its inverse-variance weighted mean flux (``swf / sw``) with error
``1 / sqrt(sw)`` at the mean time of its measurements. Asked for a coarser resolution,
raw points and finer bins are re-binned on the fly from their sums, which are exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from trapline.records import STAT_SUMS, eta_v, point_sums
from trapline.storage import models
from trapline.storage.compaction import _bins_from_points, _combine, bin_start
from trapline.storage.export import iso_utc

M = models.Measurement
B = models.LightcurveBin

POINT_COLUMNS = [
    "time", "time_mjd", "band", "resolution_s", "kind", "n", "int_flux", "int_flux_err",
    "peak_flux", "peak_flux_err", "t_min_mjd", "t_max_mjd",
]  # fmt: skip


def _raw(conn: Connection, source_id: int, band: int | None) -> pd.DataFrame:
    cols = [M.time_mjd, M.band, M.kind, M.int_flux, M.int_flux_err, M.peak_flux,
            M.peak_flux_err]
    stmt = select(*cols).where(M.source_id == int(source_id))
    if band is not None:
        stmt = stmt.where(M.band == int(band))
    rows = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in cols])
    rows.insert(0, "source_id", int(source_id))
    return rows


def _bins(conn: Connection, source_id: int, band: int | None) -> pd.DataFrame:
    cols = list(B.__table__.columns)
    stmt = select(*cols).where(B.source_id == int(source_id))
    if band is not None:
        stmt = stmt.where(B.band == int(band))
    frame = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in cols])
    # An empty result has object columns: give every column its numeric type.
    return frame.astype({c: np.int64 if c in _INTEGER else np.float64 for c in frame.columns})


_INTEGER = ("source_id", "band", "n", "n_blind", "n_forced", "n_monitor")


def _bin_points(bins: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "time_mjd": bins.st_mjd / bins.n, "band": bins.band,
        "resolution_s": bins.resolution_s, "kind": "bin", "n": bins.n,
        "int_flux": bins.swf_int / bins.sw_int, "int_flux_err": 1 / np.sqrt(bins.sw_int),
        "peak_flux": bins.swf_peak / bins.sw_peak, "peak_flux_err": 1 / np.sqrt(bins.sw_peak),
        "t_min_mjd": bins.t_min_mjd, "t_max_mjd": bins.t_max_mjd,
    })


def lightcurve(conn: Connection, source_id: int, band: int | None = None,
               resolution_s: float | None = None) -> pd.DataFrame:
    """One source's lightcurve, raw points and bins merged, sorted by time.

    ``resolution_s`` None: every point at the resolution it is stored at. A number:
    everything finer is re-binned to it (coarser stored bins are kept as they are).
    """
    raw, bins = _raw(conn, source_id, band), _bins(conn, source_id, band)
    if resolution_s:
        fine = bins[bins.resolution_s < resolution_s].drop(columns=["resolution_s"])
        usable = (raw.int_flux_err > 0) & (raw.peak_flux_err > 0)
        parts = [fine.assign(bin_start_mjd=bin_start(fine.bin_start_mjd + 1e-9, resolution_s))]
        if usable.any():
            parts.append(_bins_from_points(raw[usable], resolution_s))
        rebinned = _combine(pd.concat([p for p in parts if len(p)], ignore_index=True)) \
            if any(len(p) for p in parts) else fine.iloc[:0]
        rebinned["resolution_s"] = float(resolution_s)
        bins = pd.concat([bins[bins.resolution_s >= resolution_s], rebinned],
                         ignore_index=True)
        raw = raw[~usable]
    points = pd.DataFrame({
        "time_mjd": raw.time_mjd, "band": raw.band, "resolution_s": 0.0, "kind": raw.kind,
        "n": 1, "int_flux": raw.int_flux, "int_flux_err": raw.int_flux_err,
        "peak_flux": raw.peak_flux, "peak_flux_err": raw.peak_flux_err,
        "t_min_mjd": raw.time_mjd, "t_max_mjd": raw.time_mjd,
    })
    parts = [p for p in (points, _bin_points(bins)) if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else points
    out = out.sort_values(["time_mjd", "band"], kind="stable").reset_index(drop=True)
    out.insert(0, "time", iso_utc(out.time_mjd))
    out["band"] = out.band.astype(np.int64)
    out["n"] = out.n.astype(np.int64)
    return out[POINT_COLUMNS]


def variability(conn: Connection, source_id: int, band: int,
                t_min_mjd: float = -np.inf, t_max_mjd: float = np.inf) -> dict[str, float]:
    """eta and V (integrated and peak flux) of one source and band over a time span,
    from raw points and whole bins inside it: exact, whatever has been compacted."""
    raw, bins = _raw(conn, source_id, band), _bins(conn, source_id, band)
    raw = raw[(raw.time_mjd >= t_min_mjd) & (raw.time_mjd <= t_max_mjd)]
    bins = bins[(bins.t_min_mjd >= t_min_mjd) & (bins.t_max_mjd <= t_max_mjd)]
    out: dict[str, float] = {"n": float(len(raw) + bins.n.sum())}
    for kind, flux, err in (("int", raw.int_flux, raw.int_flux_err),
                            ("peak", raw.peak_flux, raw.peak_flux_err)):
        names = [s for s in STAT_SUMS if s.endswith(f"_{kind}")]
        sums = [np.sum(terms) + bins[name].sum() for name, terms in
                zip(names, point_sums(flux.to_numpy(float), err.to_numpy(float)), strict=True)]
        eta, v = eta_v(np.array([out["n"]]), *(np.array([x]) for x in sums))
        out[f"eta_{kind}"], out[f"v_{kind}"] = float(eta[0]), float(v[0])
    return out
