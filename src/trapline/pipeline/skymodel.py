"""The in-memory sky model: every known source's position, errors, counters and
per-band running sums, in growable numpy columns with a spatial index.

Its size is the number of sources, never the number of measurements, so every
per-image operation costs the same after a day as after a minute.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from trapline.geometry import offsets_deg, shift_position, unit_vectors
from trapline.pipeline.boundary import usable_points
from trapline.records import (
    STAT_SUMS,
    BandStatistics,
    SourceStates,
    eta_v,
    point_sums,
    two_epoch,
)

EXTREMES = ("f_max", "f_max_err", "f_min", "f_min_err")


class Growable:
    """Columns that grow by doubling; ``n`` rows are in use."""

    def __init__(self, columns: dict[str, np.dtype], capacity: int = 1024):
        self.n = 0
        self._data = {name: np.zeros(capacity, dtype=dt) for name, dt in columns.items()}

    def __getattr__(self, name: str) -> np.ndarray:
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name][: self.n]
        raise AttributeError(name)

    def full(self, name: str) -> np.ndarray:
        return self._data[name]

    def append(self, count: int, **values: np.ndarray) -> np.ndarray:
        """Add ``count`` rows; returns their indices. Unnamed columns start at zero."""
        needed = self.n + count
        capacity = len(next(iter(self._data.values())))
        if needed > capacity:
            new_capacity = max(needed, 2 * capacity)
            for name, column in self._data.items():
                grown = np.zeros(new_capacity, dtype=column.dtype)
                grown[: self.n] = column[: self.n]
                self._data[name] = grown
        rows = np.arange(self.n, needed)
        for name, value in values.items():
            self._data[name][rows] = value
        self.n = needed
        return rows


class BandState(Growable):
    """Per-source running sums of one frequency band, indexed like the sky model."""

    def __init__(self, capacity: int = 1024):
        columns = {name: np.dtype(np.float64) for name in STAT_SUMS}
        columns.update(n=np.dtype(np.int64), max_snr=np.dtype(np.float64),
                       flagged=np.dtype(bool))
        # The brightest and faintest integrated-flux points, for the two-epoch metrics.
        columns.update({name: np.dtype(np.float64) for name in EXTREMES})
        super().__init__(columns, capacity)

    def ensure(self, size: int) -> None:
        if size > self.n:
            self.append(size - self.n)


class SkyModel:
    """Known sources (blind and monitoring list) and their running statistics."""

    def __init__(self) -> None:
        self.sources = Growable(
            {
                "source_id": np.dtype(np.int64),
                "ra": np.dtype(np.float64),
                "dec": np.dtype(np.float64),
                "w_east": np.dtype(np.float64),
                "w_north": np.dtype(np.float64),
                "first_time": np.dtype(np.float64),
                "last_time": np.dtype(np.float64),
                "n_blind": np.dtype(np.int64),
                "n_forced": np.dtype(np.int64),
                "misses": np.dtype(np.int64),
                "is_monitor": np.dtype(bool),
            }
        )
        self.bands: dict[int, BandState] = {}
        self.next_id = 1
        self._tree: cKDTree | None = None
        self._tree_rows: np.ndarray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.sources.n

    # -- sources ---------------------------------------------------------------------

    def add(self, ra, dec, ra_err, dec_err, time_mjd: float, is_monitor: bool = False,
            source_ids: np.ndarray | None = None) -> np.ndarray:
        """Add sources; returns their rows. Ids are assigned unless given (on resume)."""
        ra = np.atleast_1d(np.asarray(ra, float))
        count = len(ra)
        if source_ids is None:
            source_ids = np.arange(self.next_id, self.next_id + count)
        self.next_id = max(self.next_id, int(np.max(source_ids, initial=0)) + 1)
        rows = self.sources.append(
            count,
            source_id=source_ids,
            ra=np.mod(ra, 360.0),
            dec=dec,
            w_east=1.0 / np.square(ra_err),
            w_north=1.0 / np.square(dec_err),
            first_time=time_mjd,
            last_time=time_mjd,
            is_monitor=is_monitor,
        )
        self._tree = None
        return rows

    def errors(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Position errors (deg, arcs east-west and north-south) of the weighted means."""
        return (1.0 / np.sqrt(self.sources.w_east[rows]),
                1.0 / np.sqrt(self.sources.w_north[rows]))

    def update_positions(self, rows, ra, dec, ra_err, dec_err) -> None:
        """Fold new detections into the inverse-variance weighted mean positions.

        The mean is updated in the tangent plane at the current position (so RA wrap and
        the poles need no care): shift by w_new / (W + w_new) of the offset.
        """
        s = self.sources
        we, wn = 1.0 / np.square(ra_err), 1.0 / np.square(dec_err)
        east, north = offsets_deg(s.ra[rows], s.dec[rows], ra, dec)
        tot_e, tot_n = s.w_east[rows] + we, s.w_north[rows] + wn
        new_ra, new_dec = shift_position(s.ra[rows], s.dec[rows],
                                         east * we / tot_e, north * wn / tot_n)
        s.ra[rows], s.dec[rows] = new_ra, new_dec
        s.w_east[rows], s.w_north[rows] = tot_e, tot_n
        self._tree = None

    # -- spatial index ---------------------------------------------------------------

    def tree(self) -> tuple[cKDTree | None, np.ndarray]:
        """KD-tree over the unit vectors of the blind (non-monitor) sources, and the rows
        its points stand for. Rebuilt only after sources were added or moved."""
        if self._tree is None:
            rows = np.flatnonzero(~self.sources.is_monitor)
            self._tree_rows = rows
            if len(rows):
                xyz = unit_vectors(self.sources.ra[rows], self.sources.dec[rows])
                self._tree = cKDTree(xyz)
        return (self._tree if len(self._tree_rows) else None), self._tree_rows

    def rows_within(self, ra: float, dec: float, radius_deg: float) -> np.ndarray:
        """Rows of blind sources within ``radius_deg`` of a position."""
        tree, rows = self.tree()
        if tree is None:
            return np.zeros(0, dtype=np.int64)
        chord = 2.0 * np.sin(np.radians(min(radius_deg, 180.0)) / 2.0)
        hits = tree.query_ball_point(unit_vectors(np.array(ra), np.array(dec)), chord)
        return rows[np.asarray(hits, dtype=np.int64)]

    # -- per-band statistics ---------------------------------------------------------

    def band(self, band: int) -> BandState:
        state = self.bands.get(band)
        if state is None:
            state = self.bands[band] = BandState()
        state.ensure(len(self))
        return state

    def add_fluxes(self, band: int, rows, peak, peak_err, flux, flux_err) -> np.ndarray:
        """Add one point per row to the running sums of a band (rows unique); returns
        the mask of the points counted. A point whose flux is not finite, or whose
        error is not a finite positive number, carries no weight and is left out of
        every sum (as TraP drops it), so that n and both statistics see the same points."""
        usable = usable_points(peak, peak_err) & usable_points(flux, flux_err)
        rows = np.asarray(rows)[usable]
        b = self.band(band)
        f, e = np.asarray(flux)[usable], np.asarray(flux_err)[usable]
        first = b.full("n")[rows] == 0
        for name, better in (("f_max", np.greater), ("f_min", np.less)):
            take = first | better(f, b.full(name)[rows])
            b.full(name)[rows[take]] = f[take]
            b.full(name + "_err")[rows[take]] = e[take]
        for suffix, f, e in (("int", flux, flux_err), ("peak", peak, peak_err)):
            terms = point_sums(np.asarray(f)[usable], np.asarray(e)[usable])
            names = [n for n in STAT_SUMS if n.endswith("_" + suffix)]
            for name, term in zip(names, terms, strict=True):
                b.full(name)[rows] += term
        b.full("n")[rows] += 1
        return usable

    def note_detections(self, band: int, rows: np.ndarray, snr: np.ndarray,
                        time_mjd: float) -> None:
        """Blind detections of ``rows`` (unique) at ``time_mjd``: counted, their miss
        count reset, the band's highest S/N kept."""
        s = self.sources
        s.n_blind[rows] += 1
        s.last_time[rows] = time_mjd
        s.misses[rows] = 0
        b = self.band(band)
        b.full("max_snr")[rows] = np.fmax(b.full("max_snr")[rows], snr)

    def rows_of(self, source_ids: np.ndarray) -> np.ndarray:
        """Rows of the sources with these ids (all must exist)."""
        ids = self.sources.source_id
        order = np.argsort(ids, kind="stable")
        return order[np.searchsorted(ids[order], np.asarray(source_ids, dtype=np.int64))]

    def monitor_rows(self) -> np.ndarray:
        return np.flatnonzero(self.sources.is_monitor)

    def n_blind_sources(self) -> int:
        """Number of blind (not monitoring-list) sources."""
        return int((~self.sources.is_monitor).sum())

    def restore(self, sources: SourceStates, statistics: BandStatistics,
                flagged: np.ndarray) -> None:
        """Load stored sources and their per-band sums (``flagged``: per statistics row,
        whether that source was already reported variable in that band)."""
        if len(sources):
            rows = self.add(sources.ra, sources.dec, sources.ra_err, sources.dec_err, np.nan,
                            source_ids=np.asarray(sources.source_id, dtype=np.int64))
            s = self.sources
            s.is_monitor[rows] = np.asarray(sources.is_monitor, dtype=bool)
            s.first_time[rows] = sources.first_time_mjd
            s.last_time[rows] = sources.last_time_mjd
            s.n_blind[rows] = sources.n_blind
            s.n_forced[rows] = sources.n_forced
            s.misses[rows] = sources.misses
        if not len(statistics):
            return
        rows = self.rows_of(statistics.source_id)
        bands = np.asarray(statistics.band)
        for band in np.unique(bands):
            sel = bands == band
            b = self.band(int(band))
            r = rows[sel]
            for name in (*STAT_SUMS, "max_snr"):
                b.full(name)[r] = np.nan_to_num(np.asarray(getattr(statistics, name))[sel])
            for name in EXTREMES:
                b.full(name)[r] = np.asarray(getattr(statistics, name), dtype=float)[sel]
            b.full("n")[r] = np.asarray(statistics.n)[sel]
            b.full("flagged")[r] = np.asarray(flagged, dtype=bool)[sel]

    def statistics(self, band: int, rows: np.ndarray) -> BandStatistics:
        """Current statistics of some sources in a band, as a storage record."""
        b = self.band(band)
        col = {name: b.full(name)[rows] for name in STAT_SUMS}
        n = b.full("n")[rows]
        eta_int, v_int = eta_v(n, col["sw_int"], col["swf_int"], col["swf2_int"],
                               col["sf_int"], col["sf2_int"])
        eta_peak, v_peak = eta_v(n, col["sw_peak"], col["swf_peak"], col["swf2_peak"],
                                 col["sf_peak"], col["sf2_peak"])
        ext = {name: np.where(n > 0, b.full(name)[rows], np.nan) for name in EXTREMES}
        vs, m = two_epoch(ext["f_max"], ext["f_max_err"], ext["f_min"], ext["f_min_err"])
        return BandStatistics(
            source_id=self.sources.source_id[rows], band=np.full(len(rows), band), n=n,
            eta_int=eta_int, v_int=v_int, eta_peak=eta_peak, v_peak=v_peak,
            max_snr=b.full("max_snr")[rows], misses=self.sources.misses[rows], **col, **ext,
            vs_int=vs, m_int=m,
        )

    def states(self, rows: np.ndarray) -> SourceStates:
        """Current state of some sources, as a storage record."""
        s = self.sources
        ra_err, dec_err = self.errors(rows)
        return SourceStates(
            source_id=s.source_id[rows], ra=s.ra[rows], dec=s.dec[rows],
            ra_err=ra_err, dec_err=dec_err, first_time_mjd=s.first_time[rows],
            last_time_mjd=s.last_time[rows], n_blind=s.n_blind[rows],
            n_forced=s.n_forced[rows], is_monitor=s.is_monitor[rows], misses=s.misses[rows],
        )
