"""The depth map: the best and worst detection limit seen so far per sky cell and band.

A new detection without counterpart is only a transient candidate if earlier images
covering its position were deep enough to have seen it. Keeping, per HEALPix cell and
band, the lowest and highest earlier limit (detection_sigma x local rms) makes that
check O(1) per detection, however many images came before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import Latitude, Longitude
from astropy_healpix import HEALPix

from trapline.pipeline.records import DepthUpdates


@dataclass
class Footprint:
    """The cells an image covers and the pixel at each cell centre."""

    cells: np.ndarray
    x: np.ndarray
    y: np.ndarray


class DepthMap:
    """Best (``best``) and worst (``worst``) earlier detection limit, Jy/beam, per band and
    HEALPix cell; NaN where no accepted image has covered the cell yet."""

    def __init__(self, nside: int = 128):
        self.healpix = HEALPix(nside=nside, order="nested")
        self.best: dict[int, np.ndarray] = {}
        self.worst: dict[int, np.ndarray] = {}
        self._footprints: dict[tuple, Footprint] = {}

    def _maps(self, band: int) -> tuple[np.ndarray, np.ndarray]:
        if band not in self.best:
            npix = self.healpix.npix
            self.best[band] = np.full(npix, np.nan)
            self.worst[band] = np.full(npix, np.nan)
        return self.best[band], self.worst[band]

    def cells_of(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.healpix.lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg))

    def limits_at(self, band: int, ra: np.ndarray, dec: np.ndarray):
        """(best, worst) earlier limits at positions (NaN: never covered)."""
        best, worst = self._maps(band)
        cells = self.cells_of(ra, dec)
        return best[cells], worst[cells]

    def footprint(self, image, centre_ra: float, centre_dec: float, radius_deg: float,
                  rms: np.ndarray) -> Footprint:
        """Cells whose centre falls on valid pixels of the image (cached per geometry)."""
        key = (image.wcs.to_header_string(), image.shape, round(radius_deg, 6))
        fp = self._footprints.get(key)
        if fp is None:
            cells = self.healpix.cone_search_lonlat(
                Longitude(centre_ra * u.deg), Latitude(centre_dec * u.deg),
                radius=radius_deg * u.deg,
            )
            lon, lat = self.healpix.healpix_to_lonlat(cells)
            x, y = image.sky_to_pixel(lon.to_value(u.deg), lat.to_value(u.deg))
            ny, nx = image.shape
            ok = np.isfinite(x) & np.isfinite(y)
            ok &= (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
            fp = Footprint(cells[ok], np.rint(x[ok]).astype(int), np.rint(y[ok]).astype(int))
            if len(self._footprints) > 64:
                self._footprints.clear()
            self._footprints[key] = fp
        return fp

    def update(self, band: int, footprint: Footprint, rms: np.ndarray,
               detection_sigma: float) -> DepthUpdates:
        """Fold one accepted image's limits in; returns the cells whose values changed."""
        best, worst = self._maps(band)
        limit = detection_sigma * rms[footprint.y, footprint.x].astype(float)
        valid = np.isfinite(limit)
        cells, limit = footprint.cells[valid], limit[valid]
        old_best, old_worst = best[cells], worst[cells]
        new_best = np.fmin(old_best, limit)
        new_worst = np.fmax(old_worst, limit)
        changed = ~(new_best == old_best) | ~(new_worst == old_worst)
        best[cells], worst[cells] = new_best, new_worst
        return DepthUpdates(band=np.full(int(changed.sum()), band), cell=cells[changed],
                            limit=new_best[changed], worst=new_worst[changed])

    def load(self, band: np.ndarray, cell: np.ndarray, limit: np.ndarray,
             worst: np.ndarray) -> None:
        """Restore stored values (on resume)."""
        for b in np.unique(band):
            sel = band == b
            best_map, worst_map = self._maps(int(b))
            best_map[cell[sel]] = limit[sel]
            worst_map[cell[sel]] = worst[sel]
