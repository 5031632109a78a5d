"""Precovery: forced fits of a new source on the earlier images it should have been
seen in, made when it appears (as Rubin's alert production does with forced
photometry of every new object). A steady source just under the detection threshold
that noise lifts over it has a precovery flux near its detection flux and is not new;
a real transient rises from nothing.

The earlier images are held in a bounded ring buffer of the most recent accepted
images per band: their residual images (image minus background) and rms maps, which
is all a forced fit needs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from trapline.extract import Extraction
from trapline.records import ImageRecord, PrecoveryPoints, concat


@dataclass(frozen=True)
class Buffered:
    """One earlier image kept for precovery."""

    record: ImageRecord
    band: int
    extraction: Extraction

    @property
    def nbytes(self) -> int:
        return int(self.extraction.residual.nbytes)


class ImageBuffer:
    """The most recent accepted images, at most ``per_band`` per band and ``max_bytes``
    (their pixels) in all; the oldest go first."""

    def __init__(self, per_band: int, max_bytes: int):
        self.per_band = per_band
        self.max_bytes = max_bytes
        self._bands: dict[int, deque[Buffered]] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._bands.values())

    def add(self, record: ImageRecord, band: int, extraction: Extraction) -> None:
        if self.per_band <= 0:
            return
        item = Buffered(record, band, extraction)
        if item.nbytes > self.max_bytes:
            return
        queue = self._bands.setdefault(band, deque())
        queue.append(item)
        self.nbytes += item.nbytes
        if len(queue) > self.per_band:
            self.nbytes -= queue.popleft().nbytes
        while self.nbytes > self.max_bytes:
            oldest = min((q for q in self._bands.values() if q),
                         key=lambda q: q[0].record.time_mjd)
            self.nbytes -= oldest.popleft().nbytes

    def bands(self) -> list[int]:
        """The bands with buffered images, in order."""
        return sorted(b for b, q in self._bands.items() if q)

    def images(self, band: int) -> list[Buffered]:
        """The buffered images of a band, oldest first."""
        return list(self._bands.get(band, ()))


@dataclass(frozen=True)
class Precovery:
    """Forced fits of some positions on the buffered images of a band: the points, and
    per position their weighted mean flux (Jy/beam), its error and the number of images
    fitted (0: none covered the position)."""

    points: PrecoveryPoints
    flux: np.ndarray
    flux_err: np.ndarray
    n_images: np.ndarray


def precover(buffer: ImageBuffer, band: int, ra: np.ndarray, dec: np.ndarray,
             source_ids: np.ndarray) -> Precovery:
    """Forced fits at (ra, dec) (deg) on the buffered images of ``band``."""
    n = len(ra)
    sw, swf, count = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    parts: list[PrecoveryPoints] = []
    for item in buffer.images(band) if n else []:
        fit = item.extraction.forced(ra, dec)
        # On the flux scale of the image's calibration, with its modulation (as its own
        # measurements).
        scale, modulation = item.record.flux_scale, item.record.flux_modulation
        with np.errstate(invalid="ignore"):
            ok = fit.ok & np.isfinite(fit.peak) & (fit.peak_err > 0)
        if not ok.any():
            continue
        k = int(ok.sum())
        peak = np.where(ok, fit.peak / scale, 0.0)
        peak_err = np.where(ok, np.hypot(fit.peak_err / scale, peak * modulation), 1.0)
        parts.append(PrecoveryPoints(
            source_id=np.asarray(source_ids)[ok],
            image_key=np.full(k, item.record.image_key, dtype=object),
            time_mjd=np.full(k, item.record.time_mjd), band=np.full(k, band),
            freq_hz=np.full(k, item.record.freq_hz), ra=np.asarray(ra)[ok],
            dec=np.asarray(dec)[ok], peak_flux=peak[ok],
            peak_flux_err=peak_err[ok], snr=fit.peak[ok] / fit.rms[ok]))
        w = np.where(ok, 1.0 / np.square(peak_err), 0.0)
        sw += w
        swf += w * peak
        count += ok
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(count > 0, swf / sw, np.nan)
        err = np.where(count > 0, 1.0 / np.sqrt(sw), np.nan)
    return Precovery(concat(PrecoveryPoints, parts), flux, err, count)
