"""Conversion of the pipeline's numpy columns into database rows.

NaN becomes NULL (SQLite cannot store NaN and PostgreSQL would sort it above every
number); numpy scalars become Python ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np

from trapline.records import KIND_NAMES, PRECOVERY, ImageRecord, ImageResult

UNIX_EPOCH_MJD = 40587.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KIND_TEXT = np.array([KIND_NAMES[i] for i in sorted(KIND_NAMES)], dtype=object)


def column_list(values: np.ndarray) -> list:
    """One column as a Python list, NaN -> None."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            out = values.astype(object)
            out[nan] = None
            return out.tolist()
    return values.tolist()


def to_rows(columns: Mapping[str, np.ndarray]) -> list[dict]:
    """Equal-length columns to a list of row dicts (for executemany)."""
    names = list(columns)
    lists = [column_list(columns[name]) for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]


def to_tuples(columns: Mapping[str, np.ndarray]) -> list[tuple]:
    """Equal-length columns to a list of row tuples, in the mapping's order (for COPY)."""
    return list(zip(*(column_list(v) for v in columns.values()), strict=True))


def mjd_to_datetime(mjd: float | None) -> datetime | None:
    """MJD (UTC) to an aware UTC datetime, None when not finite."""
    if mjd is None or not math.isfinite(mjd):
        return None
    return _EPOCH + timedelta(days=float(mjd) - UNIX_EPOCH_MJD)


def _float(value) -> float | None:
    value = None if value is None else float(value)
    return value if value is not None and math.isfinite(value) else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def image_row(image: ImageRecord) -> dict:
    """The ``image`` row of an ImageRecord (``shape`` is (ny, nx) like Image.shape)."""
    ny, nx = image.shape if image.shape is not None else (None, None)
    return {
        "image_key": image.image_key,
        "path": str(image.path),
        "time": mjd_to_datetime(image.time_mjd),
        "time_mjd": _float(image.time_mjd),
        "freq_hz": _float(image.freq_hz),
        "bandwidth_hz": _float(image.bandwidth_hz),
        "band": int(image.band),
        "telescope": image.telescope,
        "integration_s": _float(image.integration_s),
        "nx": _int(nx),
        "ny": _int(ny),
        "centre_ra": _float(image.centre_ra),
        "centre_dec": _float(image.centre_dec),
        "radius_deg": _float(image.radius_deg),
        "bmaj_deg": _float(image.bmaj_deg),
        "bmin_deg": _float(image.bmin_deg),
        "bpa_deg": _float(image.bpa_deg),
        "rms": _float(image.rms_median),
        "rms_min": _float(image.rms_min),
        "rms_max": _float(image.rms_max),
        "accepted": bool(image.accepted),
        "reject_reason": image.reject_reason,
        "n_blind": int(image.n_blind),
        "n_forced": int(image.n_forced),
        "n_monitor": int(image.n_monitor),
        "processed_at": datetime.now(UTC),
        "flux_scale": _float(image.flux_scale),
        "flux_scale_err": _float(image.flux_scale_err),
        "n_flux_calibrators": int(image.n_flux_calibrators),
        "offset_east_deg": _float(image.offset_east_deg),
        "offset_north_deg": _float(image.offset_north_deg),
        "n_position_calibrators": int(image.n_position_calibrators),
        "flux_modulation": _float(image.flux_modulation),
    }


def kind_text(kind: np.ndarray) -> np.ndarray:
    """Measurement kinds as text: BLIND/FORCED/MONITOR codes map to their names."""
    kind = np.asarray(kind)
    if kind.dtype.kind in "iu":
        return _KIND_TEXT[kind]
    return kind.astype(object)


def measurement_columns(result: ImageResult, image_id: int) -> dict[str, np.ndarray]:
    """The ``measurement`` columns of one image, with the image's time/freq/band."""
    m = result.measurements
    n = len(m)
    image = result.image
    columns = m.as_dict()
    columns["kind"] = kind_text(m.kind)
    columns["source_id"] = np.asarray(m.source_id, dtype=np.int64)
    columns["image_id"] = np.full(n, image_id, dtype=np.int64)
    columns["time_mjd"] = np.full(n, image.time_mjd, dtype=float)
    columns["freq_hz"] = np.full(n, image.freq_hz, dtype=float)
    columns["band"] = np.full(n, image.band, dtype=np.int64)
    return columns


def precovery_columns(result: ImageResult, image_ids: dict[str, int]) -> dict[str, np.ndarray]:
    """The ``measurement`` rows of an image's precovery points, each with the earlier
    image it was measured on (points of images not stored are left out)."""
    p = result.precovery
    keep = np.array([k in image_ids for k in p.image_key], dtype=bool)
    p = p.rows(keep)
    n = len(p)
    nan = np.full(n, np.nan)
    return {
        "source_id": np.asarray(p.source_id, dtype=np.int64),
        "image_id": np.array([image_ids[k] for k in p.image_key], dtype=np.int64),
        "kind": np.full(n, KIND_NAMES[PRECOVERY], dtype=object),
        "time_mjd": np.asarray(p.time_mjd, dtype=float),
        "freq_hz": np.asarray(p.freq_hz, dtype=float),
        "band": np.asarray(p.band, dtype=np.int64),
        "ra": p.ra, "dec": p.dec, "ra_err": nan, "dec_err": nan,
        "peak_flux": p.peak_flux, "peak_flux_err": p.peak_flux_err,
        "int_flux": p.peak_flux, "int_flux_err": p.peak_flux_err, "snr": p.snr,
        "smaj_asec": nan, "smin_asec": nan, "pa_deg": nan,
    }
