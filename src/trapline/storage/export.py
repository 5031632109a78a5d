"""Read side: the stored run as pandas DataFrames with fixed leading columns.

Each table has a query (SQLAlchemy ``select()``) and a fixed list of leading columns;
more columns may follow them. Times are ISO 8601 UTC strings with milliseconds in
astropy's ``isot`` form (``2024-01-31T12:00:00.000``), angles degrees, fluxes Jy/beam
(peak) and Jy (int).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Double,
    Integer,
    Select,
    select,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from trapline.geometry import separation_deg
from trapline.storage import models
from trapline.storage.engine import describe
from trapline.storage.errors import StorageError
from trapline.storage.healpix import cone_where
from trapline.storage.rows import UNIX_EPOCH_MJD

I, S, M = models.Image, models.Source, models.Measurement
B, C = models.BandStatistics, models.Candidate

IMAGE_COLUMNS = [
    "image_id", "path", "time", "freq_hz", "band", "rms", "bmaj_deg", "bmin_deg", "bpa_deg",
    "accepted", "reject_reason", "n_blind",
]  # fmt: skip
SOURCE_COLUMNS = [
    "source_id", "ra", "dec", "ra_err", "dec_err", "first_time", "n_blind", "n_forced",
]  # fmt: skip
MEASUREMENT_COLUMNS = [
    "measurement_id", "source_id", "image_id", "time", "freq_hz", "band", "ra", "dec",
    "ra_err", "dec_err", "peak_flux", "peak_flux_err", "int_flux", "int_flux_err", "snr", "kind",
]  # fmt: skip
VARIABILITY_COLUMNS = [
    "source_id", "band", "n", "eta_int", "v_int", "eta_peak", "v_peak", "max_snr",
]  # fmt: skip
CANDIDATE_COLUMNS = ["source_id", "kind", "level", "time", "image_id", "significance"]
# What a candidate's ``significance`` (dimensionless) means, per kind (see
# pipeline/newsource.py and pipeline/variability.py); ``flux`` is the detection's
# peak (new, Jy/beam) or the mean integrated flux (variable, Jy), ``limit`` the best
# earlier detection limit at the position (new, Jy/beam).
SIGNIFICANCE = {
    "new": "the rise of the peak over the precovery flux (forced fits on the earlier images "
           "of the band) in combined errors, rise_sigma; where no earlier image was buffered, "
           "the peak in units of the noise of the deepest earlier image at the position",
    "new-rejected": "as for new: a detection not claimed new, for the reason given (no "
                    "significant rise over its precovery flux, or a possible sidelobe)",
    "variable": "the significance of eta_int for the number of points when the source "
                "was flagged, in Gaussian sigma (the normal deviate with the tail chance of "
                "chi^2 with N-1 degrees of freedom at (N-1) eta_int); eta and V were over "
                "their thresholds",
}
MONITOR_COLUMNS = ["monitor_id", "name", "ra", "dec", "source_id", "added"]
FORK_COLUMNS = ["source_id", "parent_id", "image_id", "time"]
# Compacted lightcurve bins: the bin (mean time, resolution_s wide, from bin_start) with
# its inverse-variance weighted mean fluxes and their errors (Jy, Jy/beam), then the
# stored sums from which bins recombine exactly (see storage/lightcurves.py).
BIN_COLUMNS = [
    "source_id", "band", "resolution_s", "bin_start", "time", "n", "n_blind", "n_forced",
    "n_monitor", "int_flux", "int_flux_err", "peak_flux", "peak_flux_err",
]  # fmt: skip


def iso_utc(mjd: pd.Series | np.ndarray) -> pd.Series:
    """MJD (UTC) to ISO 8601 UTC strings with milliseconds, as astropy's ``isot``
    (``2026-01-01T00:00:00.500``, no zone suffix, like the simulator's truth tables and
    DATE-OBS); NaN stays missing."""
    seconds = (pd.Series(mjd, dtype=float) - UNIX_EPOCH_MJD) * 86400.0
    return _isot(pd.to_datetime(seconds, unit="s"))


def _isot(stamps: pd.Series) -> pd.Series:
    return stamps.dt.round("ms").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3]


@dataclass(frozen=True)
class Export:
    """One exportable table: its query, leading columns and MJD columns to render."""

    query: Callable[[], Select]
    columns: list[str]
    times: dict[str, str]  # output time column -> MJD column
    derive: Callable[[pd.DataFrame], None] | None = None  # adds computed columns

    def finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add the derived and ISO time columns and put the leading columns first."""
        if self.derive is not None:
            self.derive(frame)
        for name, mjd in self.times.items():
            frame[name] = iso_utc(frame[mjd])
        rest = [c for c in frame.columns if c not in self.columns]
        return frame[self.columns + rest]


def _images() -> Select:
    leading = [I.image_id, I.path, I.freq_hz, I.band, I.rms, I.bmaj_deg, I.bmin_deg, I.bpa_deg]
    leading += [I.accepted, I.reject_reason, I.n_blind, I.n_forced, I.n_monitor]
    extra = [c for c in I.__table__.columns if c.name not in {x.key for x in leading}]
    return select(*leading, *(c for c in extra if c.name != "time")).order_by(I.image_id)


def _sources() -> Select:
    return select(
        S.source_id, S.ra, S.dec, S.ra_err, S.dec_err, S.n_blind, S.n_forced,
        S.first_time_mjd, S.last_time_mjd, S.is_monitor,
    ).order_by(S.source_id)  # fmt: skip


def _measurements() -> Select:
    return select(
        M.measurement_id, M.source_id, M.image_id, M.freq_hz, M.band, M.ra, M.dec,
        M.ra_err, M.dec_err, M.peak_flux, M.peak_flux_err, M.int_flux, M.int_flux_err,
        M.snr, M.kind, M.smaj_asec, M.smin_asec, M.pa_deg, M.time_mjd,
    ).order_by(M.measurement_id)  # fmt: skip


def _variability() -> Select:
    return select(
        B.source_id, B.band, B.n, B.eta_int, B.v_int, B.eta_peak, B.v_peak, B.max_snr, B.misses,
        B.vs_int, B.m_int, B.f_max, B.f_max_err, B.f_min, B.f_min_err
    ).order_by(B.source_id, B.band)


def _candidates() -> Select:
    return select(
        C.source_id, C.kind, C.level, C.image_id, C.significance, C.candidate_id, C.band,
        C.flux, C.limit, C.time_mjd, C.rise_sigma, C.precovery_flux, C.precovery_flux_err,
        C.n_precovery, C.n_bands, C.reason,
    ).order_by(C.candidate_id)  # fmt: skip


def _monitors() -> Select:
    m = models.Monitor
    return select(m.monitor_id, m.name, m.ra, m.dec, m.source_id, m.added_mjd).order_by(
        m.monitor_id
    )


def _forks() -> Select:
    f = models.SourceFork
    return (select(f.source_id, f.parent_id, f.image_id, I.time_mjd)
            .join(I, I.image_id == f.image_id).order_by(f.source_id))


def _bins() -> Select:
    b = models.LightcurveBin
    return select(*b.__table__.columns).order_by(b.source_id, b.band, b.resolution_s,
                                                 b.bin_start_mjd)


def _bin_values(frame: pd.DataFrame) -> None:
    """A bin's mean time (MJD) and weighted mean fluxes with their errors."""
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["time_mjd"] = frame.st_mjd / frame.n
        for kind in ("int", "peak"):
            frame[f"{kind}_flux"] = frame[f"swf_{kind}"] / frame[f"sw_{kind}"]
            frame[f"{kind}_flux_err"] = 1 / np.sqrt(frame[f"sw_{kind}"])


TABLES: dict[str, Export] = {
    "images": Export(_images, IMAGE_COLUMNS, {"time": "time_mjd"}),
    "sources": Export(
        _sources, SOURCE_COLUMNS, {"first_time": "first_time_mjd", "last_time": "last_time_mjd"}
    ),
    "measurements": Export(_measurements, MEASUREMENT_COLUMNS, {"time": "time_mjd"}),
    "variability": Export(_variability, VARIABILITY_COLUMNS, {}),
    "candidates": Export(_candidates, CANDIDATE_COLUMNS, {"time": "time_mjd"}),
    "monitors": Export(_monitors, MONITOR_COLUMNS, {"added": "added_mjd"}),
    "bins": Export(_bins, BIN_COLUMNS, {"bin_start": "bin_start_mjd", "time": "time_mjd"},
                   _bin_values),
    # One-to-many splits: lightcurve source_id forked from parent_id in image image_id.
    "forks": Export(_forks, FORK_COLUMNS, {"time": "time_mjd"}),
}
EXPORTS = list(TABLES)  # the tables of `trapline export`, /download and the notebook API


def _column(values: Sequence, type_, nullable: bool):
    """One result column as a typed array: NULL -> NaN / <NA> / missing string."""
    if isinstance(type_, Double):
        return np.array(values, dtype=float)
    if isinstance(type_, Boolean):
        return np.array(values, dtype=bool)
    if isinstance(type_, Integer | BigInteger):
        return pd.array(values, dtype="Int64") if nullable else np.array(values, dtype=np.int64)
    if isinstance(type_, DateTime):
        return _isot(pd.Series(pd.to_datetime(list(values), utc=True)).dt.tz_localize(None))
    return pd.array(values, dtype="str")


def _frame(rows: Sequence, stmt: Select) -> pd.DataFrame:
    """Rows of ``stmt`` as a DataFrame with dtypes from the column types, the same for
    every chunk (nullable integers as pandas Int64, text as str)."""
    cols = stmt.selected_columns
    values = list(zip(*rows, strict=True)) or [() for _ in cols]
    return pd.DataFrame(
        {c.key: _column(v, c.type, c.nullable) for c, v in zip(cols, values, strict=True)}
    )


def read(
    conn: Connection, name: str, where: Sequence = (), order_by: Sequence = ()
) -> pd.DataFrame:
    """The export table ``name`` ('images', 'sources', ...), optionally filtered."""
    table = TABLES[name]
    stmt = table.query()
    if where:
        stmt = stmt.where(*where)
    if order_by:
        stmt = stmt.order_by(None).order_by(*order_by)
    return table.finish(_frame(conn.execute(stmt).all(), stmt))


def iter_chunks(conn: Connection, name: str, rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """The export table ``name`` in chunks of at most ``rows`` rows (server-side cursor
    on PostgreSQL), for tables too large for memory. Yields at least one (maybe empty)
    chunk."""
    table = TABLES[name]
    stmt = table.query()
    result = conn.execution_options(stream_results=True, yield_per=rows).execute(stmt)
    empty = True
    for part in result.partitions():
        empty = False
        yield table.finish(_frame(part, stmt))
    if empty:
        yield table.finish(_frame([], stmt))


def measurements(conn: Connection, source_id: int | None = None) -> pd.DataFrame:
    """All measurements, or one source's (sorted by time)."""
    if source_id is None:
        return read(conn, "measurements")
    return read(conn, "measurements", [M.source_id == int(source_id)], [M.time_mjd, M.band])


def lightcurve(conn: Connection, source_id: int, band: int | None = None) -> pd.DataFrame:
    """Measurements of one source sorted by time, optionally of one band only."""
    where = [M.source_id == int(source_id)]
    if band is not None:
        where.append(M.band == int(band))
    return read(conn, "measurements", where, [M.time_mjd, M.band])


def cone(conn: Connection, ra: float, dec: float, radius_deg: float) -> pd.DataFrame:
    """Sources within ``radius_deg`` of (ra, dec) (deg), nearest first, with their
    distance ``distance_deg``. Uses the HEALPix index: a few index ranges, then an
    exact angular-distance cut."""
    frame = read(conn, "sources", [cone_where(ra, dec, radius_deg)])
    distance = separation_deg(ra, dec, frame["ra"].to_numpy(), frame["dec"].to_numpy())
    frame["distance_deg"] = distance
    frame = frame[distance <= radius_deg].sort_values(["distance_deg", "source_id"])
    return frame.reset_index(drop=True)


@contextmanager
def storage_errors(url: URL) -> Iterator[None]:
    """Turn database errors into StorageError naming the database."""
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        hint = ""
        if "no such table" in first or "does not exist" in first:
            hint = " (no Trapline schema? create it with `trapline db upgrade`)"
        raise StorageError(f"cannot read database {describe(url)}: {first}{hint}") from exc
