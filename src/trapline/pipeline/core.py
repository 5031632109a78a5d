"""The ordered, in-memory heart of the pipeline: one accepted image in, one
:class:`ImageResult` out, with the sky model, depth map and statistics updated.

Nothing here touches the database; nothing here scans history. The cost of an image is
set by its own detections and the sources in its field.
"""

from __future__ import annotations

import logging

import numpy as np

from trapline.pipeline.associate import associate
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.depth import DepthMap
from trapline.pipeline.ingest import BandAssigner
from trapline.pipeline.measure import Measured
from trapline.pipeline.quality import RmsHistory
from trapline.pipeline.records import (
    BLIND,
    FORCED,
    MONITOR,
    BandStatistics,
    Candidates,
    ImageResult,
    Measurements,
)
from trapline.pipeline.skymodel import SkyModel

log = logging.getLogger(__name__)


class Pipeline:
    """Association, forced fits, new-source and variability detection over a sky model."""

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.sky = SkyModel()
        self.depth = DepthMap(self.config.new_source.depth_nside,
                              self.config.new_source.depth_cell_beams)
        self.bands = BandAssigner(self.config.image.band_tolerance_hz)
        self.rms_history = RmsHistory(self.config.quality)
        self.n_forks = 0
        self._pending_monitors: list[int] = []

    # -- monitoring list -------------------------------------------------------------

    def add_monitors(self, ra: np.ndarray, dec: np.ndarray, time_mjd: float = np.nan) -> np.ndarray:
        """Add monitoring-list positions (deg); they are measured in every image."""
        ra, dec = np.atleast_1d(ra), np.atleast_1d(dec)
        tiny = np.full(len(ra), 1e-9)
        rows = self.sky.add(ra, dec, tiny, tiny, time_mjd, is_monitor=True)
        self._pending_monitors.extend(rows.tolist())
        return rows

    # -- one image -------------------------------------------------------------------

    def process(self, measured: Measured, id_base: int | None = None) -> ImageResult:
        """Decide everything about one measured image, in time order.

        ``id_base``: new sources get ``id_base`` plus the index of their detection in
        the image's whole catalogue (``extraction.detection_index`` when the catalogue
        is a part of it), so sky partitions give a source the same id everywhere."""
        record = measured.record
        if not record.accepted or measured.extraction is None:
            return ImageResult(record)
        band = self.bands.band_of(record.freq_hz)
        record.band = band
        reason = self.rms_history.check(band, record.rms_median)
        if reason:
            record.accepted, record.reject_reason, record.n_blind = False, reason, 0
            return ImageResult(record)
        self.rms_history.add(band, record.rms_median)

        ex = measured.extraction
        cat = ex.sources
        t = record.time_mjd
        cfg = self.config
        sys_err = np.hypot(cfg.association.position_sys_err_arcsec / 3600.0,
                           cfg.association.position_sys_err_beams * ex.image.beam.bmaj_deg)
        ra_err = np.hypot(cat.ra_err_deg, sys_err)
        dec_err = np.hypot(cat.dec_err_deg, sys_err)

        # Association of the blind detections.
        assoc = associate(self.sky, cat.ra_deg, cat.dec_deg, ra_err, dec_err,
                          ex.image.beam.bmaj_deg / 2.0, cfg.association.beamwidth_limit,
                          cfg.association.de_ruiter_radius)
        new = assoc.source_row < 0
        self.n_forks += int((assoc.parent_row >= 0).sum())
        candidates = self._new_source_candidates(band, cat, new & (assoc.parent_row < 0),
                                                 cfg.extraction.detection_sigma)
        old = ~new
        old_rows = assoc.source_row[old]
        self.sky.update_positions(old_rows, cat.ra_deg[old], cat.dec_deg[old], ra_err[old],
                                  dec_err[old])
        ids = None
        if id_base is not None:
            index = getattr(ex, "detection_index", None)
            index = np.arange(len(cat)) if index is None else index
            ids = id_base + index[new]
        new_rows = self.sky.add(cat.ra_deg[new], cat.dec_deg[new], ra_err[new], dec_err[new], t,
                                source_ids=ids)
        bstate = self.sky.band(band)
        det_rows = assoc.source_row.copy()
        det_rows[new] = new_rows
        if len(candidates):
            candidates.source_id = self.sky.sources.source_id[det_rows[candidates.source_id]]

        blind_rows = np.concatenate([det_rows, assoc.shared_rows])
        blind_dets = np.concatenate([np.arange(len(cat)), assoc.shared_detections])
        s = self.sky.sources
        s.n_blind[blind_rows] += 1
        s.last_time[blind_rows] = t
        bstate.full("misses")[blind_rows] = 0
        bstate.full("max_snr")[blind_rows] = np.fmax(bstate.full("max_snr")[blind_rows],
                                                     cat.snr[blind_dets])
        blind = Measurements(
            source_id=s.source_id[blind_rows], kind=np.full(len(blind_rows), BLIND),
            ra=cat.ra_deg[blind_dets], dec=cat.dec_deg[blind_dets],
            ra_err=cat.ra_err_deg[blind_dets], dec_err=cat.dec_err_deg[blind_dets],
            peak_flux=cat.peak_jy[blind_dets], peak_flux_err=cat.peak_err_jy[blind_dets],
            int_flux=cat.flux_jy[blind_dets], int_flux_err=cat.flux_err_jy[blind_dets],
            snr=cat.snr[blind_dets], smaj_asec=cat.smaj_asec[blind_dets],
            smin_asec=cat.smin_asec[blind_dets], pa_deg=cat.pa_deg[blind_dets],
        )

        # Null detections: known sources in the field not detected here.
        in_field = self.sky.rows_within(record.centre_ra, record.centre_dec, record.radius_deg)
        detected = np.zeros(len(self.sky), dtype=bool)
        detected[blind_rows] = True
        todo = in_field[~detected[in_field]]
        todo = todo[bstate.full("misses")[todo] < cfg.forced.max_misses]
        forced, forced_rows = self._forced(ex, todo, FORCED)
        bstate.full("misses")[todo] += 1
        s.n_forced[forced_rows] += 1

        monitor_rows = np.flatnonzero(s.is_monitor)
        monitored, monitor_rows = self._forced(ex, monitor_rows, MONITOR)
        s.last_time[monitor_rows] = t

        measurements = _concat([blind, forced, monitored])
        measured_rows = np.concatenate([blind_rows, forced_rows, monitor_rows])
        self.sky.add_fluxes(band, measured_rows, measurements.peak_flux,
                            measurements.peak_flux_err, measurements.int_flux,
                            measurements.int_flux_err)
        statistics = self.sky.statistics(band, np.unique(measured_rows))
        variables = self._variable_candidates(band, statistics)
        touched = np.unique(np.concatenate([measured_rows, todo,
                                            np.asarray(self._pending_monitors, dtype=np.int64)]))
        self._pending_monitors.clear()

        fp = self.depth.footprint(ex.image)
        depth = self.depth.update(band, fp, ex.maps.rms, cfg.extraction.detection_sigma)
        record.n_blind = len(cat)
        record.n_forced = len(forced)
        record.n_monitor = len(monitored)
        return ImageResult(
            image=record, measurements=measurements, sources=self.sky.states(touched),
            statistics=self.sky.statistics(band, touched) if len(touched) else statistics,
            candidates=_concat_candidates([candidates, variables]), depth=depth,
        )

    # -- stages ----------------------------------------------------------------------

    def restore(self, state) -> None:
        """Rebuild from a stored state (see :mod:`trapline.pipeline.resume`)."""
        from trapline.pipeline.resume import restore

        restore(self, state)

    def state_values(self) -> dict[str, str]:
        """Run-state values stored with every image, for resuming."""
        import json

        return {"next_source_id": str(self.sky.next_id), "depth_nside": str(self.depth.nside),
                "band_centres_hz": json.dumps(self.bands.centres)}

    def owned_sources(self, nside: int, tile: int) -> np.ndarray:
        """Ids of the blind sources whose position lies in HEALPix (nested) ``tile``."""
        from astropy import units as u
        from astropy.coordinates import Latitude, Longitude
        from astropy_healpix import HEALPix

        s = self.sky.sources
        if not len(self.sky):
            return np.zeros(0, dtype=np.int64)
        tiles = HEALPix(nside=nside, order="nested").lonlat_to_healpix(
            Longitude(s.ra * u.deg), Latitude(s.dec * u.deg))
        return s.source_id[(np.asarray(tiles) == tile) & ~s.is_monitor]

    def _forced(self, ex, rows: np.ndarray, kind: int) -> tuple[Measurements, np.ndarray]:
        s = self.sky.sources
        if len(rows) == 0:
            return Measurements.empty(), rows
        fit = ex.forced(s.ra[rows], s.dec[rows])
        ok = fit.ok
        rows = rows[ok]
        ra_err, dec_err = self.sky.errors(rows)
        nan = np.full(len(rows), np.nan)
        return Measurements(
            source_id=s.source_id[rows], kind=np.full(len(rows), kind),
            ra=s.ra[rows], dec=s.dec[rows], ra_err=ra_err, dec_err=dec_err,
            peak_flux=fit.peak[ok], peak_flux_err=fit.peak_err[ok],
            int_flux=fit.peak[ok], int_flux_err=fit.peak_err[ok],
            snr=fit.peak[ok] / fit.rms[ok], smaj_asec=nan, smin_asec=nan, pa_deg=nan,
        ), rows

    def _new_source_candidates(self, band: int, cat, mask: np.ndarray,
                               detection_sigma: float) -> Candidates:
        """New-source candidates among detections without counterpart: those the best
        earlier image covering the position was deep enough to have seen ('possible'),
        or even the worst ('likely'). ``source_id`` holds detection indices here; the
        caller maps them to source ids once the sources exist."""
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return Candidates.empty()
        best, worst = self.depth.limits_at(band, cat.ra_deg[idx], cat.dec_deg[idx])
        margin = self.config.new_source.margin_sigma
        peak = cat.peak_jy[idx]
        best_rms, worst_rms = best / detection_sigma, worst / detection_sigma
        with np.errstate(invalid="ignore"):
            possible = peak > best + margin * best_rms
            likely = peak > worst + margin * worst_rms
        keep = np.isfinite(best) & possible
        return Candidates(
            source_id=idx[keep], kind=np.full(int(keep.sum()), "new", dtype=object),
            level=np.where(likely[keep], "likely", "possible").astype(object),
            band=np.full(int(keep.sum()), band), significance=(peak / best_rms)[keep],
            flux=peak[keep], limit=best[keep],
        )

    def _variable_candidates(self, band: int, stats: BandStatistics) -> Candidates:
        """Sources whose eta and V (integrated flux) first cross both thresholds."""
        v = self.config.variability
        with np.errstate(invalid="ignore"):
            over = ((stats.n >= v.min_points) & (stats.eta_int > v.eta_threshold)
                    & (stats.v_int > v.v_threshold))
        if not over.any():
            return Candidates.empty()
        rows = self._rows_of(stats.source_id[over])
        flagged = self.sky.band(band).full("flagged")
        first = ~flagged[rows]
        flagged[rows] = True
        sel = np.flatnonzero(over)[first]
        n = len(sel)
        return Candidates(
            source_id=stats.source_id[sel], kind=np.full(n, "variable", dtype=object),
            level=np.full(n, "eta+v", dtype=object), band=np.full(n, band),
            significance=stats.eta_int[sel] / v.eta_threshold,
            flux=stats.sf_int[sel] / stats.n[sel],
            limit=np.full(n, np.nan),
        )

    def _rows_of(self, source_ids: np.ndarray) -> np.ndarray:
        ids = self.sky.sources.source_id
        order = np.argsort(ids)
        return order[np.searchsorted(ids[order], source_ids)]


def _concat(parts: list[Measurements]) -> Measurements:
    out = {name: np.concatenate([getattr(p, name) for p in parts])
           for name in Measurements.names()}
    for name in ("source_id", "kind"):
        out[name] = out[name].astype(np.int64)
    return Measurements(**out)


def _concat_candidates(parts: list[Candidates]) -> Candidates:
    out = {}
    for name in Candidates.names():
        values = [getattr(p, name) for p in parts]
        if name in ("kind", "level"):
            out[name] = np.concatenate([np.asarray(v, dtype=object) for v in values])
        else:
            out[name] = np.concatenate(values)
    out["source_id"] = out["source_id"].astype(np.int64)
    out["band"] = out["band"].astype(np.int64)
    return Candidates(**out)
