"""The ordered decision stage: one timestep of measured images in (one image per band,
all of one time), one :class:`~trapline.records.ImageResult` per image out, with the
sky model, depth map and statistics updated.

Nothing here touches the database; nothing here scans history. The cost of a
timestep is set by its own detections and the sources in its field.

A timestep is decided as a whole, so its result does not depend on the order its
bands arrive in: the images are taken in frequency order; first every band's
detections are associated (a source new in one band exists for the others), then
every band gets its forced fits (null detections, monitoring list) and statistics.
A source is followed with forced fits in every band until ``[forced] max_misses``
timesteps have passed without a blind detection in any band.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from trapline.geometry import healpix_cells
from trapline.pipeline import forced as forced_fits
from trapline.pipeline.associate import associate
from trapline.pipeline.bands import BandAssigner
from trapline.pipeline.boundary import position_errors
from trapline.pipeline.calibrate import (
    Calibration,
    ModulationHistory,
    References,
    apply,
    calibrated,
    calibration_check,
    catalogue_references,
    fit_calibration,
    load_reference_catalogue,
    sky_references,
)
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.depth import DepthMap
from trapline.pipeline.measure import Measured
from trapline.pipeline.newsource import new_source_candidates, sidelobe_vetoes
from trapline.pipeline.precovery import ImageBuffer, precover
from trapline.pipeline.quality import RmsHistory
from trapline.pipeline.skymodel import SkyModel
from trapline.pipeline.stamps import stamps_for
from trapline.pipeline.variability import over_thresholds, variable_candidates
from trapline.records import (
    BLIND,
    MONITOR,
    Candidates,
    Forks,
    ImageRecord,
    ImageResult,
    Measurements,
    PrecoveryPoints,
    Stamps,
    StoredState,
    concat,
)

log = logging.getLogger(__name__)


class Decider(Protocol):
    """What the driver needs of the ordered stage: one sky model (:class:`SkyDecider`)
    or sky partitions (:class:`~trapline.pipeline.partition.PartitionedDecider`)."""

    def decide(self, timestep: Sequence[Measured]) -> list[ImageResult]:
        """Decide one timestep; one result per image, in the order given."""

    def restore(self, state: StoredState) -> None:
        """Resume from a stored run."""

    def add_monitors(self, positions: Sequence[tuple[float, float, str]]
                     ) -> list[tuple[str, float, float, int]]:
        """Add monitoring-list positions not known yet; returns (name, ra, dec, source_id)
        of those added."""

    def state_values(self) -> dict[str, str]:
        """Run-state values stored with every timestep, for resuming."""

    def source_count(self) -> int:
        """Number of blind sources."""

    def remember(self, measured: Sequence[Measured]) -> None:
        """Earlier, already decided images into the precovery buffer (on resume)."""


@dataclass
class _Associated:
    """One image after association (the first half of its decision)."""

    measured: Measured
    record: ImageRecord  # with its band and calibration
    calibration: Calibration
    band: int
    blind_rows: np.ndarray
    blind: Measurements
    candidates: Candidates
    forks: Forks
    precovery: PrecoveryPoints
    stamps: Stamps


class SkyDecider:
    """Association, forced fits, new-source and variability detection over one sky model."""

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.sky = SkyModel()
        self.depth = DepthMap(self.config.new_source.depth_nside,
                              self.config.new_source.depth_cell_beams)
        self.bands = BandAssigner(self.config.image.band_tolerance_hz)
        self.rms_history = RmsHistory(self.config.quality)
        self.modulations = ModulationHistory(self.config.calibration.modulation_images)
        ns = self.config.new_source
        self.buffer = ImageBuffer(ns.precovery_images, int(ns.precovery_memory_mb * 2**20))
        path = self.config.calibration.reference_catalogue
        self.reference = load_reference_catalogue(path) if path else None
        self.n_forks = 0
        self._pending_monitors: list[int] = []

    # -- the Decider interface ---------------------------------------------------------

    def decide(self, timestep: Sequence[Measured], id_bases: Sequence[int] | None = None,
               calibrations: Sequence[Calibration | None] | None = None
               ) -> list[ImageResult]:
        """Decide a timestep. ``id_bases``: per image, new sources get that number plus
        the index of their detection in the image's whole catalogue (sky partitions
        give a source the same id everywhere); default: the next free ids.
        ``calibrations``: per image (sky partitions calibrate on all of theirs); default:
        each image against the sky model as it was before the timestep."""
        order = frequency_order(timestep)
        if calibrations is None:
            calibrations = [None] * len(timestep)
            for i in order:
                calibrations[i] = self._calibrate(timestep[i])
        results: list[ImageResult | None] = [None] * len(timestep)
        associated: dict[int, _Associated] = {}
        for i in order:
            outcome = self._associate(timestep[i], None if id_bases is None else id_bases[i],
                                      calibrations[i])
            if isinstance(outcome, ImageResult):
                results[i] = outcome
            else:
                associated[i] = outcome
        bands_detected = np.zeros(len(self.sky), dtype=np.int64)
        for a in associated.values():
            bands_detected[np.unique(a.blind_rows)] += 1
        detected_any = bands_detected > 0
        in_field = np.zeros(len(self.sky), dtype=bool)
        parts: dict[int, tuple] = {}
        for i in order:
            if i in associated:
                parts[i] = self._measure_known(associated[i], in_field)
        # A timestep without a blind detection counts as one miss, in every band.
        s = self.sky.sources
        s.misses[in_field & ~detected_any & ~s.is_monitor] += 1
        pending = np.asarray(self._pending_monitors, dtype=np.int64)
        self._pending_monitors.clear()
        for i, (a, measurements, touched, stats_rows, variables, depth, n_forced,
                n_monitor) in parts.items():
            touched = np.unique(np.concatenate([touched, pending]))
            record = replace(a.record, n_blind=len(a.measured.extraction.sources),
                             n_forced=n_forced, n_monitor=n_monitor)
            stats = self.sky.statistics(a.band, touched if len(touched) else stats_rows)
            candidates = a.candidates
            if len(candidates):
                candidates = replace(candidates, n_bands=bands_detected[
                    self.sky.rows_of(candidates.source_id)])
            results[i] = ImageResult(
                image=record, measurements=measurements, sources=self.sky.states(touched),
                statistics=stats, candidates=concat(Candidates, [candidates, variables]),
                depth=depth, forks=a.forks, precovery=a.precovery, stamps=a.stamps)
        for a in associated.values():
            self.buffer.add(a.record, a.band, a.measured.extraction)
        return results  # type: ignore[return-value]

    def references(self, measured: Measured) -> References:
        """Calibration candidates for an image: the reference catalogue's sources, or
        the sky model's steady, isolated, bright ones near its detections."""
        cfg = self.config.calibration
        ex = measured.extraction
        beam = ex.image.beam.bmaj_deg
        if self.reference is not None:
            at = self.reference.at(measured.record.freq_hz, self.config.image.band_tolerance_hz)
            return catalogue_references(at, beam, cfg)
        # Asking has no side effect (a new band has no references yet): partitions are
        # asked for their references concurrently, in no fixed order.
        band = self._band(measured.record, assign=False)
        return sky_references(self.sky, band, ex.sources, beam, cfg)

    def _calibrate(self, measured: Measured) -> Calibration | None:
        record = measured.record
        if not record.accepted or measured.extraction is None:
            return None
        ex = measured.extraction
        if not self.config.calibration.enabled:
            return Calibration.identity(record.centre_ra, record.centre_dec)
        cal = fit_calibration(self.references(measured), ex.sources, ex.image.beam.bmaj_deg,
                              record.centre_ra, record.centre_dec, self.config.calibration)
        return self.modulations.pooled(self._band(record), cal)

    def _band(self, record: ImageRecord, assign: bool = True) -> int:
        """The image's band: the one its record carries (sky partitions are given the
        bands by their :class:`PartitionedDecider`, which numbers them once for all), else
        this decider's own numbering (with ``assign``, a new frequency starts a band)."""
        if record.band >= 0:
            return record.band
        if assign:
            return self.bands.band_of(record.freq_hz)
        return self.bands.find(record.freq_hz)

    def remember(self, measured: Sequence[Measured]) -> None:
        """Put earlier, already decided images into the precovery buffer (a resumed run
        re-reads the newest stored images, so it decides as an uninterrupted one)."""
        for m in sorted(measured, key=lambda m: (m.record.time_mjd, m.record.freq_hz)):
            if m.record.accepted and m.extraction is not None:
                self.buffer.add(m.record, self._band(m.record), m.extraction)

    def restore(self, state: StoredState) -> None:
        """Rebuild from a stored run: sources, per-band sums (and which were reported
        variable), the depth map, the bands, the rms history and the next source id."""
        stats = state.statistics
        flagged = self._already_flagged(state)
        self.sky.restore(state.sources, stats, flagged)
        values = state.values
        depth = state.depth
        if len(depth):
            self.depth.load(int(values.get("depth_nside", 0)), np.asarray(depth.band),
                            np.asarray(depth.cell), np.asarray(depth.limit),
                            np.asarray(depth.worst))
        if "next_source_id" in values:
            self.sky.next_id = max(self.sky.next_id, int(values["next_source_id"]))
        if "band_centres_hz" in values:
            self.bands.centres = [float(f) for f in json.loads(values["band_centres_hz"])]
        if "rms_history" in values:
            self.rms_history.load(json.loads(values["rms_history"]))
        if "modulation_history" in values:
            self.modulations.load(json.loads(values["modulation_history"]))

    def _already_flagged(self, state: StoredState) -> np.ndarray:
        """Per statistics row: was the source reported variable in that band? From the
        stored candidates when the store read them, else from the flag rule."""
        stats = state.statistics
        if state.flagged is not None:
            key = set(zip(state.flagged.source_id.tolist(), state.flagged.band.tolist(),
                          strict=True))
            return np.array([(int(s), int(b)) in key for s, b in zip(
                stats.source_id, stats.band, strict=True)], dtype=bool)
        return over_thresholds(stats.n, stats.eta_int, stats.v_int, self.config.variability)

    def add_monitors(self, positions: Sequence[tuple[float, float, str]],
                     source_ids: Sequence[int] | None = None,
                     ) -> list[tuple[str, float, float, int]]:
        """``source_ids``: the ids to give them (sky partitions), default the next free."""
        s = self.sky.sources
        known = {(round(float(r), 7), round(float(d), 7))
                 for r, d in zip(s.ra[s.is_monitor], s.dec[s.is_monitor], strict=True)}
        added = []
        for k, (ra, dec, name) in enumerate(positions):
            if (round(ra, 7), round(dec, 7)) in known:
                continue
            known.add((round(ra, 7), round(dec, 7)))
            tiny = np.full(1, 1e-9)
            ids = None if source_ids is None else np.array([source_ids[k]], dtype=np.int64)
            rows = self.sky.add(np.array([ra]), np.array([dec]), tiny, tiny, np.nan,
                                is_monitor=True, source_ids=ids)
            self._pending_monitors.extend(rows.tolist())
            added.append((name, ra, dec, int(self.sky.sources.source_id[rows[0]])))
        return added

    def state_values(self) -> dict[str, str]:
        return {"next_source_id": str(self.sky.next_id), "depth_nside": str(self.depth.nside),
                "band_centres_hz": json.dumps(self.bands.centres),
                "rms_history": json.dumps(self.rms_history.dump()),
                "modulation_history": json.dumps(self.modulations.dump())}

    def source_count(self) -> int:
        return self.sky.n_blind_sources()

    def owned_sources(self, nside: int, tile: int) -> np.ndarray:
        """Ids of the blind sources whose position lies in HEALPix (nested) ``tile``."""
        s = self.sky.sources
        if not len(self.sky):
            return np.zeros(0, dtype=np.int64)
        return s.source_id[(healpix_cells(nside, s.ra, s.dec) == tile) & ~s.is_monitor]

    # -- the two halves of an image's decision -----------------------------------------

    def _associate(self, measured: Measured, id_base: int | None,
                   calibration: Calibration | None) -> _Associated | ImageResult:
        """Quality control against the band's history and of the calibration, then
        association of the calibrated blind detections: known sources refined, new
        sources added, new-source candidates."""
        record = measured.record
        if not record.accepted or measured.extraction is None:
            return ImageResult(record)
        band = self._band(record)
        reason = self.rms_history.check(band, record.rms_median)
        if reason:
            return ImageResult(replace(record, band=band, accepted=False, reject_reason=reason,
                                       n_blind=0))
        cal = calibration or Calibration.identity(record.centre_ra, record.centre_dec)
        record = replace(record, band=band, flux_scale=cal.flux_scale,
                         flux_scale_err=cal.flux_scale_err, n_flux_calibrators=cal.n_flux,
                         offset_east_deg=cal.offset_east_deg,
                         offset_north_deg=cal.offset_north_deg,
                         n_position_calibrators=cal.n_position,
                         flux_modulation=cal.flux_modulation)
        reason = calibration_check(cal, self.config.calibration)
        if reason:
            return ImageResult(replace(record, accepted=False, reject_reason=reason, n_blind=0))
        self.rms_history.add(band, record.rms_median)
        self.modulations.add(band, cal)
        ex = measured.extraction
        cat = apply(ex.sources, cal) if cal.n_flux or cal.n_position else ex.sources
        index = (measured.detection_index if measured.detection_index is not None
                 else np.arange(len(cat)))
        finite = np.isfinite(cat.ra_deg) & np.isfinite(cat.dec_deg)
        if not finite.all():
            log.warning("%s: %d detections without a finite position left out",
                        record.path, int((~finite).sum()))
            cat, index = cat.select(finite), index[finite]
        t = record.time_mjd
        a = self.config.association
        sys_err = np.hypot(a.position_sys_err_arcsec / 3600.0,
                           a.position_sys_err_beams * ex.image.beam.bmaj_deg)
        ra_err = np.hypot(position_errors(cat.ra_err_deg), sys_err)
        dec_err = np.hypot(position_errors(cat.dec_err_deg), sys_err)
        assoc = associate(self.sky, cat.ra_deg, cat.dec_deg, ra_err, dec_err,
                          ex.image.beam.bmaj_deg / 2.0, a.beamwidth_limit, a.de_ruiter_radius)
        new = assoc.source_row < 0
        forked = assoc.parent_row >= 0
        self.n_forks += int(forked.sum())
        old = ~new
        self.sky.update_positions(assoc.source_row[old], cat.ra_deg[old], cat.dec_deg[old],
                                  ra_err[old], dec_err[old])
        ids = None if id_base is None else id_base + index[new]
        new_rows = self.sky.add(cat.ra_deg[new], cat.dec_deg[new], ra_err[new], dec_err[new], t,
                                source_ids=ids)
        det_rows = assoc.source_row.copy()
        det_rows[new] = new_rows
        s = self.sky.sources
        candidates, precovery = self._new_sources(band, cat, np.flatnonzero(new & ~forked),
                                                  det_rows, ex.image.beam.bmaj_deg)
        stamps = self._stamps(record, band, ex, candidates)
        forks = Forks(source_id=s.source_id[det_rows[forked]],
                      parent_id=s.source_id[assoc.parent_row[forked]])
        blind_rows = np.concatenate([det_rows, assoc.shared_rows]).astype(np.int64)
        blind_dets = np.concatenate([np.arange(len(cat)), assoc.shared_detections]).astype(int)
        self.sky.note_detections(band, blind_rows, cat.snr[blind_dets], t)
        blind = Measurements(
            source_id=s.source_id[blind_rows], kind=np.full(len(blind_rows), BLIND),
            ra=cat.ra_deg[blind_dets], dec=cat.dec_deg[blind_dets],
            ra_err=cat.ra_err_deg[blind_dets], dec_err=cat.dec_err_deg[blind_dets],
            peak_flux=cat.peak_jy[blind_dets], peak_flux_err=cat.peak_err_jy[blind_dets],
            int_flux=cat.flux_jy[blind_dets], int_flux_err=cat.flux_err_jy[blind_dets],
            snr=cat.snr[blind_dets], smaj_asec=cat.smaj_asec[blind_dets],
            smin_asec=cat.smin_asec[blind_dets], pa_deg=cat.pa_deg[blind_dets],
        )
        return _Associated(measured, record, cal, band, blind_rows, blind, candidates, forks,
                           precovery, stamps)

    def _stamps(self, record: ImageRecord, band: int, ex, candidates: Candidates) -> Stamps:
        """Cutouts for the image's new sources (claimed new only) from it and the newest
        earlier images of its band."""
        ns = self.config.new_source
        new = np.asarray(candidates.kind) == "new"
        if ns.stamp_pixels <= 0 or not new.any():
            return Stamps.empty()
        ids = np.asarray(candidates.source_id)[new]
        rows = self.sky.rows_of(ids)
        s = self.sky.sources
        earlier = self.buffer.images(band)[::-1][:ns.stamp_images_before]
        return stamps_for(ids, s.ra[rows], s.dec[rows], record, band, ex, earlier,
                          ns.stamp_pixels)

    def _new_sources(self, band: int, cat, detections: np.ndarray, det_rows: np.ndarray,
                     beam_deg: float) -> tuple[Candidates, PrecoveryPoints]:
        """New-source candidates among ``detections`` (their sources just added at
        ``det_rows``): precovery forced fits on the buffered images of every band (the
        points join the sources' lightcurves and running sums in their bands; those of
        the detection's band decide the rise), sidelobe vetoes, the decision."""
        ns = self.config.new_source
        rows = det_rows[detections]
        ids = self.sky.sources.source_id[rows]
        ra, dec = cat.ra_deg[detections], cat.dec_deg[detections]
        found = precover(self.buffer, band, ra, dec, ids)
        parts = [found.points, *(precover(self.buffer, other, ra, dec, ids).points
                                 for other in self.buffer.bands() if other != band)]
        for part in parts:
            for key in np.unique(part.image_key) if len(part) else ():
                at = np.flatnonzero(part.image_key == key)
                self.sky.add_fluxes(int(part.band[at[0]]), self.sky.rows_of(part.source_id[at]),
                                    part.peak_flux[at], part.peak_flux_err[at],
                                    part.peak_flux[at], part.peak_flux_err[at])
        points = concat(PrecoveryPoints, parts)
        vetoes = sidelobe_vetoes(cat, detections, beam_deg, ns.sidelobe_fraction,
                                 ns.sidelobe_radius_beams)
        candidates = new_source_candidates(self.depth, band, cat, detections, found, vetoes,
                                           self.config.extraction.detection_sigma, ns)
        if len(candidates):
            candidates = replace(candidates, source_id=self.sky.sources.source_id[
                det_rows[candidates.source_id]])
        return candidates, points

    def _measure_known(self, a: _Associated, in_field: np.ndarray) -> tuple:
        """Forced fits of the known sources the image did not detect and of the
        monitoring list; the band's running sums, variability candidates, depth map.
        ``in_field`` (a mask over the sky model) gains the image's field."""
        ex = a.measured.extraction
        record = a.measured.record
        cfg = self.config
        s = self.sky.sources
        detected = np.zeros(len(self.sky), dtype=bool)
        detected[a.blind_rows] = True
        field = self.sky.rows_within(record.centre_ra, record.centre_dec, record.radius_deg)
        in_field[field] = True
        todo = forced_fits.null_detection_rows(self.sky, record, detected, cfg.forced.max_misses)
        nulls, null_rows = forced_fits.forced_measurements(self.sky, ex, todo,
                                                           calibration=a.calibration)
        nulls = calibrated(nulls, a.calibration)
        s.n_forced[null_rows] += 1
        monitored, monitor_rows = forced_fits.forced_measurements(
            self.sky, ex, self.sky.monitor_rows(), MONITOR, calibration=a.calibration)
        monitored = calibrated(monitored, a.calibration)
        s.last_time[monitor_rows] = record.time_mjd
        measurements = concat(Measurements, [a.blind, nulls, monitored])
        measured_rows = np.concatenate([a.blind_rows, null_rows, monitor_rows]).astype(np.int64)
        self.sky.add_fluxes(a.band, measured_rows, measurements.peak_flux,
                            measurements.peak_flux_err, measurements.int_flux,
                            measurements.int_flux_err)
        stats_rows = np.unique(measured_rows)
        variables = variable_candidates(self.sky, a.band, self.sky.statistics(a.band, stats_rows),
                                        cfg.variability)
        touched = np.unique(np.concatenate([measured_rows, todo]))
        fp = self.depth.footprint(ex.image)
        # Limits on the calibrated flux scale: detection_sigma rms / flux_scale.
        depth = self.depth.update(a.band, fp, ex.maps.rms,
                                  cfg.extraction.detection_sigma / a.calibration.flux_scale)
        return (a, measurements, touched, stats_rows, variables, depth, len(nulls),
                len(monitored))


def frequency_order(timestep: Sequence[Measured]) -> list[int]:
    """The images of a timestep in frequency order (then by key): the order they are
    decided in, whatever order they came in."""
    return sorted(range(len(timestep)), key=lambda i: (timestep[i].record.freq_hz,
                                                       timestep[i].record.image_key))
