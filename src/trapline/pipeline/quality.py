"""Quality control of images. Every rejection carries a reason; rejected images never
reach the sky model.

Checks on the image alone (run next to extraction, in the workers) and one that needs
the recent history of its band (run in order, in the associating process).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from trapline.geometry import field_circle, separation_deg
from trapline.image import Image
from trapline.pipeline.bands import BandWindows
from trapline.pipeline.brightsources import BRIGHT_SOURCES
from trapline.pipeline.config import QualitySection


def image_checks(image: Image, rms_median: float, q: QualitySection) -> str | None:
    """Reasons an image is unusable by itself, or None."""
    if not np.isfinite(image.time_mjd):
        # Without a time an image cannot be ordered, nor its points put on a lightcurve.
        return ("no observation time: the header has no usable DATE-OBS or MJD-OBS; set "
                "[image] time_mjd (MJD) in the configuration")
    data = image.data
    blank = 1.0 - np.count_nonzero(np.isfinite(data)) / max(data.size, 1)
    if blank > q.max_blank_fraction:
        return f"blanked: {blank:.0%} of pixels are NaN (limit {q.max_blank_fraction:.0%})"
    if not np.isfinite(rms_median) or rms_median <= 0:
        return "flat: no noise to measure"
    if not q.rms_min_jy <= rms_median <= q.rms_max_jy:
        return (f"rms: {rms_median:.3g} Jy/beam outside [{q.rms_min_jy:.3g}, "
                f"{q.rms_max_jy:.3g}]")
    beam = image.pixel_beam()
    fwhm_min = beam.sigma_min * 2.3548
    fwhm_maj = beam.sigma_maj * 2.3548
    if fwhm_min < q.beam_min_pixels:
        return f"beam undersampled: minor axis {fwhm_min:.2f} px < {q.beam_min_pixels} px"
    if fwhm_maj > q.beam_max_pixels:
        return f"beam oversampled: major axis {fwhm_maj:.1f} px > {q.beam_max_pixels} px"
    if fwhm_maj / fwhm_min > q.beam_max_ratio:
        return f"beam elongated: axis ratio {fwhm_maj / fwhm_min:.1f} > {q.beam_max_ratio}"
    return bright_source_check(image, q)


def bright_source_check(image: Image, q: QualitySection) -> str | None:
    """TraP's bright-source check: the nearest of ``q.bright_sources`` closer than
    ``q.bright_source_min_deg`` to the field centre, or None.

    Skipped for fields of radius above ``q.bright_source_max_radius_deg`` (an all-sky
    image always holds Cas A; TraP runs the check on LOFAR images only). The Sun and
    Jupiter are placed at the image's time; with no time known they are left out.
    """
    if not q.bright_sources or q.bright_source_min_deg <= 0:
        return None
    fp = field_circle(image)
    if fp.radius_deg > q.bright_source_max_radius_deg:
        return None
    near: list[tuple[float, str]] = []
    for name in q.bright_sources:
        known = BRIGHT_SOURCES[name]
        if known is None:
            if not math.isfinite(image.time_mjd):
                continue
            label, (ra, dec) = name, body_position(name.lower(), image.time_mjd)
        else:
            label, ra, dec = known
        sep = float(separation_deg(fp.ra, fp.dec, ra, dec))
        if sep < q.bright_source_min_deg:
            near.append((sep, label))
    if not near:
        return None
    sep, label = min(near)
    return (f"bright source: {label} {sep:.1f} deg from the field centre "
            f"(limit {q.bright_source_min_deg:g})")


def body_position(body: str, time_mjd: float) -> tuple[float, float]:
    """Geocentric RA, Dec (deg, GCRS: within aberration's 20 arcsec of ICRS) of a
    solar-system body at ``time_mjd`` (MJD, UTC), from astropy's built-in ephemeris
    (no download). Cached per minute: the Sun moves under a milli-degree in one."""
    return _body_position(body, round(time_mjd * 1440.0))


@lru_cache(maxsize=256)
def _body_position(body: str, minute: int) -> tuple[float, float]:
    from astropy.coordinates import get_body, solar_system_ephemeris
    from astropy.time import Time

    with solar_system_ephemeris.set("builtin"):
        pos = get_body(body, Time(minute / 1440.0, format="mjd", scale="utc"))
    return float(pos.ra.deg), float(pos.dec.deg)


class RmsHistory:
    """Recent accepted rms values per band; flags images far from the recent mean."""

    def __init__(self, q: QualitySection):
        self.q = q
        self._history = BandWindows(q.rms_history)

    def check(self, band: int, rms: float) -> str | None:
        history = self._history.values(band)
        if len(history) < self.q.rms_history_min_images:
            return None
        values = np.asarray(history)
        mean, std = values.mean(), values.std(ddof=1)
        if std > 0 and abs(rms - mean) > self.q.rms_history_sigma * std:
            return (f"rms history: {rms:.3g} Jy/beam is {abs(rms - mean) / std:.1f} sigma from "
                    f"the mean {mean:.3g} of the last {len(values)} images in this band")
        return None

    def add(self, band: int, rms: float) -> None:
        self._history.add(band, rms)

    def dump(self) -> dict[str, list[float]]:
        """The history per band, to store with the run (a resumed run checks as an
        uninterrupted one does)."""
        return self._history.dump()

    def load(self, stored: dict[str, list[float]]) -> None:
        self._history.load(stored)
