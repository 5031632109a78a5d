"""Compaction: old measurements down-sampled into time bins, coarser with age.

A resolution ladder, e.g. full cadence for a day, 1-minute bins for 30 days, 1-hour
bins after that, bounds the storage of a pipeline that never stops. Each pass does a
bounded amount of work (``batch_rows``), in one transaction:

1. lock: a compare-and-set on the ``compaction_epoch`` state row serialises
   compactors (a second one waits, then finds its view stale and retries);
2. read the oldest not yet compacted rows of one tier older than that tier's keep
   time, through the time index (never a scan of the history);
3. add them into the next tier's bins (sums are additive, so a bin filled over several
   passes is the same as one filled at once);
4. delete them, except raw measurements that must stay at full resolution: points
   within ``candidate_window_s`` of a candidate of their source, and monitoring-list
   points if so configured; those are skipped with a watermark.

Interrupted, a pass rolls back entirely; run again, it continues. Variability sums of
bins plus remaining raw points equal those of the raw points, to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, select, tuple_, update

from trapline.records import STAT_SUMS, point_sums
from trapline.storage import models
from trapline.storage.writer import _insert, greatest, least, upsert

M = models.Measurement
B = models.LightcurveBin
C = models.Candidate
S = models.PipelineState
BIN = B.__table__
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder: ``resolution_s`` 0 for raw measurements; data are kept
    at this resolution for ``keep_s`` seconds (0: forever)."""

    resolution_s: float
    keep_s: float


def tiers_from(ladder: list) -> list[Tier]:
    """Tiers from a configured ladder ``[[resolution_s, keep_s], ...]``."""
    return [Tier(float(r), float(k)) for r, k in ladder]


@dataclass
class PassResult:
    """What one compaction pass did."""

    tier: int = -1
    rows_read: int = 0
    rows_deleted: int = 0
    rows_kept_raw: int = 0
    bins_written: int = 0

    @property
    def did_work(self) -> bool:
        return self.rows_read > 0


def bin_start(time_mjd: np.ndarray, resolution_s: float) -> np.ndarray:
    """Start (MJD) of the ``resolution_s`` bin holding each time: bins are aligned on
    multiples of the resolution since MJD 0, so every tier nests in the next."""
    seconds = np.floor(np.asarray(time_mjd) * SECONDS_PER_DAY / resolution_s) * resolution_s
    return seconds / SECONDS_PER_DAY


def _bins_from_points(rows: pd.DataFrame, resolution_s: float) -> pd.DataFrame:
    """Aggregate raw measurements into bins (one row per source, band and bin)."""
    frame = pd.DataFrame({
        "source_id": rows.source_id.astype(np.int64),
        "band": rows.band.astype(np.int64),
        "bin_start_mjd": bin_start(rows.time_mjd.to_numpy(), resolution_s),
        "n": 1,
        "n_blind": (rows.kind == "blind").astype(np.int64),
        # A precovery point is a forced fit too (made on an earlier image).
        "n_forced": rows.kind.isin(["forced", "precovery"]).astype(np.int64),
        "n_monitor": (rows.kind == "monitor").astype(np.int64),
        "t_min_mjd": rows.time_mjd, "t_max_mjd": rows.time_mjd, "st_mjd": rows.time_mjd,
    })
    for kind, flux, err in (("int", rows.int_flux, rows.int_flux_err),
                            ("peak", rows.peak_flux, rows.peak_flux_err)):
        f = flux.to_numpy(dtype=float)
        names = [s for s in STAT_SUMS if s.endswith(f"_{kind}")]
        for name, terms in zip(names, point_sums(f, err.to_numpy(dtype=float)), strict=True):
            frame[name] = terms
        frame[f"min_{kind}"], frame[f"max_{kind}"] = f, f
    return _combine(frame)


def _combine(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge rows of the same (source, band, bin): sums add, extremes combine."""
    agg = {c: "sum" for c in frame.columns
           if c not in ("source_id", "band", "bin_start_mjd")}
    for c in ("t_min_mjd", "min_int", "min_peak"):
        agg[c] = "min"
    for c in ("t_max_mjd", "max_int", "max_peak"):
        agg[c] = "max"
    return frame.groupby(["source_id", "band", "bin_start_mjd"], as_index=False).agg(agg)


def _add(conn, old, new):
    return old + new


_ADDITIVE = ("n", "n_blind", "n_forced", "n_monitor", "st_mjd", *STAT_SUMS)


def _write_bins(conn: Connection, bins: pd.DataFrame, resolution_s: float) -> None:
    """Add bins into the table: counts and sums add, extremes combine."""
    merge = {c: _add for c in _ADDITIVE}
    merge.update({c: least for c in ("t_min_mjd", "min_int", "min_peak")})
    merge.update({c: greatest for c in ("t_max_mjd", "max_int", "max_peak")})
    columns = {c: bins[c].to_numpy() for c in bins.columns}
    columns["resolution_s"] = np.full(len(bins), float(resolution_s))
    upsert(conn, BIN, columns, merge)


def _lock(conn: Connection) -> bool:
    """Serialise compactors: bump ``compaction_epoch`` only if nobody else did."""
    seen = conn.execute(select(S.value).where(S.key == "compaction_epoch")).scalar()
    if seen is None:
        stmt = _insert(conn, S.__table__).values(key="compaction_epoch", value="0")
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        seen = "0"
    bumped = conn.execute(
        update(S).where(S.key == "compaction_epoch", S.value == seen)
        .values(value=str(int(seen) + 1))
    ).rowcount
    return bumped == 1


def _state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(S.value).where(S.key == key)).scalar()


def _set_state(conn: Connection, key: str, value: str) -> None:
    stmt = _insert(conn, S.__table__).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def latest_time(conn: Connection) -> float | None:
    """Newest measurement time (MJD), read through the time index."""
    return conn.execute(select(func.max(M.time_mjd))).scalar()


def _compact_raw(conn: Connection, tiers: list[Tier], now: float, batch_rows: int,
                 candidate_window_s: float, keep_monitor_raw: bool) -> PassResult:
    cutoff = now - tiers[0].keep_s / SECONDS_PER_DAY
    mark = _state(conn, "compaction_raw_watermark")
    after_t, after_id = (float(v) for v in mark.split(",")) if mark else (-np.inf, -1)
    cols = [M.measurement_id, M.source_id, M.band, M.kind, M.time_mjd, M.int_flux,
            M.int_flux_err, M.peak_flux, M.peak_flux_err]
    stmt = (select(*cols)
            .where(tuple_(M.time_mjd, M.measurement_id) > tuple_(after_t, int(after_id)),
                   M.time_mjd < cutoff)
            .order_by(M.time_mjd, M.measurement_id).limit(batch_rows))
    rows = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in cols])
    result = PassResult(tier=0, rows_read=len(rows))
    if rows.empty:
        return result
    keep = _must_stay_raw(conn, rows, candidate_window_s, keep_monitor_raw)
    # Points without usable errors cannot enter weighted sums: they stay raw too.
    usable = (rows.int_flux_err > 0) & (rows.peak_flux_err > 0)
    keep |= ~usable.to_numpy()
    move = rows[~keep]
    if len(move):
        bins = _bins_from_points(move, tiers[1].resolution_s)
        _write_bins(conn, bins, tiers[1].resolution_s)
        result.bins_written = len(bins)
        ids = move.measurement_id.to_numpy()
        for chunk in np.array_split(ids, max(1, len(ids) // 10_000)):
            conn.execute(delete(M).where(M.measurement_id.in_(chunk.tolist())))
    result.rows_deleted = len(move)
    result.rows_kept_raw = int(keep.sum())
    last = rows.iloc[-1]
    _set_state(conn, "compaction_raw_watermark",
               f"{float(last.time_mjd)!r},{int(last.measurement_id)}")
    return result


def _must_stay_raw(conn: Connection, rows: pd.DataFrame, window_s: float,
                   keep_monitor_raw: bool) -> np.ndarray:
    keep = np.zeros(len(rows), dtype=bool)
    if keep_monitor_raw:
        keep |= (rows.kind == "monitor").to_numpy()
    if window_s > 0:
        sources = np.unique(rows.source_id.to_numpy()).tolist()
        cand = pd.DataFrame(
            conn.execute(select(C.source_id, C.time_mjd).where(C.source_id.in_(sources))).all(),
            columns=["source_id", "time_mjd"])
        if len(cand):
            merged = rows[["source_id", "time_mjd"]].reset_index().merge(
                cand, on="source_id", suffixes=("", "_cand"))
            near = (np.abs(merged.time_mjd - merged.time_mjd_cand) * SECONDS_PER_DAY
                    <= window_s)
            keep[np.unique(merged.loc[near, "index"].to_numpy())] = True
    return keep


def _compact_bins(conn: Connection, tiers: list[Tier], k: int, now: float,
                  batch_rows: int) -> PassResult:
    res, coarser = tiers[k].resolution_s, tiers[k + 1].resolution_s
    cutoff = now - tiers[k].keep_s / SECONDS_PER_DAY - res / SECONDS_PER_DAY
    cols = list(BIN.columns)
    stmt = (select(*cols).where(B.resolution_s == res, B.bin_start_mjd < cutoff)
            .order_by(B.bin_start_mjd).limit(batch_rows))
    rows = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in cols])
    result = PassResult(tier=k, rows_read=len(rows))
    if rows.empty:
        return result
    old = list(zip(rows.source_id.astype(int).tolist(), rows.band.astype(int).tolist(),
                   rows.bin_start_mjd.astype(float).tolist(), strict=True))
    # A fine bin lies inside exactly one coarse bin: place it by its start (nudged past
    # rounding at the coarse boundary).
    rows["bin_start_mjd"] = bin_start(rows.bin_start_mjd.to_numpy() + 1e-9, coarser)
    bins = _combine(rows.drop(columns=["resolution_s"]))
    _write_bins(conn, bins, coarser)
    result.bins_written = len(bins)
    for i in range(0, len(old), 5_000):
        conn.execute(delete(B).where(
            B.resolution_s == res,
            tuple_(B.source_id, B.band, B.bin_start_mjd).in_(old[i:i + 5_000])))
    result.rows_deleted = len(rows)
    return result


def compact_pass(engine: Engine, tiers: list[Tier], batch_rows: int = 50_000,
                 candidate_window_s: float = 600.0, keep_monitor_raw: bool = True,
                 now_mjd: float | None = None) -> PassResult:
    """One bounded pass: the first tier that has work does up to ``batch_rows`` rows.

    ``now_mjd`` defaults to the newest measurement time, so archival data compacts by
    observation time, not wall-clock time."""
    if len(tiers) < 2:
        return PassResult()
    with engine.begin() as conn:
        if not _lock(conn):
            return PassResult()
        now = latest_time(conn) if now_mjd is None else now_mjd
        if now is None:
            return PassResult()
        if tiers[0].keep_s > 0:
            result = _compact_raw(conn, tiers, now, batch_rows, candidate_window_s,
                                  keep_monitor_raw)
            if result.did_work:
                return result
        for k in range(1, len(tiers) - 1):
            if tiers[k].keep_s > 0:
                result = _compact_bins(conn, tiers, k, now, batch_rows)
                if result.did_work:
                    return result
    return PassResult()


def compact(engine: Engine, tiers: list[Tier], max_passes: int | None = None,
            **kwargs) -> list[PassResult]:
    """Passes until there is nothing left to do (or ``max_passes``)."""
    done = []
    while max_passes is None or len(done) < max_passes:
        result = compact_pass(engine, tiers, **kwargs)
        if not result.did_work:
            break
        done.append(result)
    return done
