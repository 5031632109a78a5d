"""Forced fits of known sources: null detections (sources in the field that were not
detected) and the monitoring list (positions measured in every image)."""

from __future__ import annotations

import numpy as np

from trapline.extract import Extraction
from trapline.pipeline.calibrate import Calibration, apparent_positions
from trapline.pipeline.skymodel import SkyModel
from trapline.records import FORCED, ImageRecord, Measurements


def null_detection_rows(sky: SkyModel, record: ImageRecord, detected: np.ndarray,
                        max_misses: int) -> np.ndarray:
    """Rows of the blind sources in the image's field that it did not detect
    (``detected``: a mask over the sky model) and that are still followed: fewer than
    ``max_misses`` timesteps since their last blind detection in any band."""
    in_field = sky.rows_within(record.centre_ra, record.centre_dec, record.radius_deg)
    todo = in_field[~detected[in_field]]
    return todo[sky.sources.misses[todo] < max_misses]


def forced_measurements(sky: SkyModel, extraction: Extraction, rows: np.ndarray,
                        kind: int = FORCED, calibration: Calibration | None = None,
                        ) -> tuple[Measurements, np.ndarray]:
    """Fit the beam at the sky-model positions of ``rows``, moved to where the image
    has them by its ``calibration``'s position model; returns the measurements (Jy/beam,
    not yet on the calibrated flux scale; integrated flux is the peak for a point
    source; positions those of the sky model) and the rows fitted (a position off the
    image or on blanked pixels gives no fit)."""
    s = sky.sources
    if len(rows) == 0:
        return Measurements.empty(), np.zeros(0, dtype=np.int64)
    ra, dec = s.ra[rows], s.dec[rows]
    if calibration is not None:
        ra, dec = apparent_positions(calibration, ra, dec)
    fit = extraction.forced(ra, dec)
    ok = fit.ok
    rows = rows[ok]
    ra_err, dec_err = sky.errors(rows)
    nan = np.full(len(rows), np.nan)
    return Measurements(
        source_id=s.source_id[rows], kind=np.full(len(rows), kind, dtype=np.int64),
        ra=s.ra[rows], dec=s.dec[rows], ra_err=ra_err, dec_err=dec_err,
        peak_flux=fit.peak[ok], peak_flux_err=fit.peak_err[ok],
        int_flux=fit.peak[ok], int_flux_err=fit.peak_err[ok],
        snr=fit.peak[ok] / fit.rms[ok], smaj_asec=nan, smin_asec=nan, pa_deg=nan,
    ), rows
