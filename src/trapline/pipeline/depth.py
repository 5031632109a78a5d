"""The depth map: the best and worst detection limit seen so far per sky cell and band.

A new detection without counterpart is only a transient candidate if earlier images
covering its position were deep enough to have seen it. Keeping, per HEALPix cell
(one or two beams across) and band, the lowest and highest earlier limit (detection_sigma
x local rms) makes that check O(1) per detection, however many images came before.

Cells get a slot in dense arrays the first time an image covers them, and each
pointing's footprint (its cells, their pixels and slots) is computed once and cached,
so folding an image in is a handful of numpy operations over its footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

from trapline.geometry import healpix_cells, healpix_grid
from trapline.records import DepthUpdates

# A stored limit is rewritten only when it changed by more than this fraction, so the
# first images of a run do not rewrite every cell each time the rms estimate wobbles.
WRITE_TOLERANCE = 0.01
# A footprint is reused while the image's pixels moved less than this on the sky
# (the rms map it is read from is smooth over tens of pixels).
FOOTPRINT_SHIFT_PIX = 0.5
# Candidate cells are found this many HEALPix levels coarser (64 times fewer), then split.
COARSE_LEVELS = 3


def nside_for_beam(bmaj_deg: float, beams_per_cell: float = 2.0) -> int:
    """Smallest power-of-two nside whose cells are no larger than ``beams_per_cell``
    beams: fine enough to follow the rms map (itself smooth over a background cell of
    many beams) and to reach within a beam of the image edge."""
    cell_deg = math.sqrt(4 * math.pi / 12) * 180 / math.pi  # nside 1
    nside = 1
    while cell_deg / nside > beams_per_cell * bmaj_deg and nside < 2**20:
        nside *= 2
    return nside


@dataclass
class DepthFootprint:
    """The cells an image covers, the pixel at each cell centre and the cells' slots."""

    slots: np.ndarray
    x: np.ndarray
    y: np.ndarray


class DepthMap:
    """Best and worst earlier detection limit (Jy/beam) per band and HEALPix cell.

    ``nside`` 0 picks it from the first image's beam: cells at most ``cell_beams``
    beams across (:func:`nside_for_beam`)."""

    def __init__(self, nside: int = 0, cell_beams: float = 2.0):
        self.nside = nside
        self.cell_beams = cell_beams
        self.healpix = healpix_grid(nside) if nside else None
        self._cells = np.zeros(0, dtype=np.int64)  # the cell of each slot
        self._index_cells = np.zeros(0, dtype=np.int64)  # sorted cells ...
        self._index_slots = np.zeros(0, dtype=np.int64)  # ... and their slots
        self._best: dict[int, np.ndarray] = {}
        self._worst: dict[int, np.ndarray] = {}
        self._written: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._footprints: dict[tuple, list] = {}  # geometry -> [(wcs, DepthFootprint)]

    def _ensure_healpix(self, bmaj_deg: float) -> HEALPix:
        if self.healpix is None:
            self.nside = nside_for_beam(bmaj_deg, self.cell_beams)
            self.healpix = healpix_grid(self.nside)
        return self.healpix

    def _slots(self, cells: np.ndarray, create: bool) -> np.ndarray:
        """Slot of each cell (-1 when it has none and ``create`` is False). Cells are
        looked up by binary search in a sorted index (an image covers ~10^5 cells)."""
        cells = np.asarray(cells, dtype=np.int64)
        slots = self._lookup(cells)
        if create and (slots < 0).any():
            missing = np.unique(cells[slots < 0])
            new_slots = np.arange(len(self._cells), len(self._cells) + len(missing))
            self._cells = np.concatenate([self._cells, missing])
            index_cells = np.concatenate([self._index_cells, missing])
            order = np.argsort(index_cells, kind="stable")
            self._index_cells = index_cells[order]
            self._index_slots = np.concatenate([self._index_slots, new_slots])[order]
            slots = self._lookup(cells)
        return slots

    def _lookup(self, cells: np.ndarray) -> np.ndarray:
        if not len(self._index_cells):
            return np.full(len(cells), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._index_cells, cells), len(self._index_cells) - 1)
        found = self._index_cells[at] == cells
        return np.where(found, self._index_slots[at], -1)

    def _arrays(self, band: int):
        size = len(self._cells)
        for store in (self._best, self._worst):
            arr = store.get(band)
            if arr is None or len(arr) < size:
                grown = np.full(max(size, 2 * len(arr) if arr is not None else size), np.nan)
                if arr is not None:
                    grown[: len(arr)] = arr
                store[band] = grown
        written = self._written.get(band)
        if written is None or len(written[0]) < len(self._best[band]):
            new = (np.full(len(self._best[band]), np.nan), np.full(len(self._best[band]), np.nan))
            if written is not None:
                new[0][: len(written[0])] = written[0]
                new[1][: len(written[1])] = written[1]
            self._written[band] = new
        return self._best[band], self._worst[band], self._written[band]

    def limits_at(self, band: int, ra: np.ndarray, dec: np.ndarray):
        """(best, worst) earlier limits at positions (NaN: never covered)."""
        nan = np.full(len(ra), np.nan)
        if self.healpix is None or band not in self._best or len(ra) == 0:
            return nan, nan.copy()
        slots = self._slots(healpix_cells(self.nside, ra, dec), create=False)
        best, worst, _ = self._arrays(band)
        found = slots >= 0
        out_best, out_worst = nan.copy(), nan.copy()
        out_best[found], out_worst[found] = best[slots[found]], worst[slots[found]]
        return out_best, out_worst

    def footprint(self, image) -> DepthFootprint:
        """Cells whose centre falls on the image, with the pixel at each centre.

        Computed once per pointing and geometry, and reused for later images of the same
        geometry whose pixels lie within ``FOOTPRINT_SHIFT_PIX`` of where they were: a
        zenith-pointed all-sky monitor's RA moves at the sidereal rate (a 2300x2300
        AARTFAAC image by ~0.1 pixel a second), so every image has a new WCS, but the
        depth lookup does not need a new footprint for each."""
        hp = self._ensure_healpix(image.beam.bmaj_deg)
        w = image.wcs.wcs
        geometry = (tuple(w.ctype), tuple(w.crpix), tuple(w.cdelt),
                    tuple(w.get_pc().ravel()), image.shape)
        cached = self._footprints.setdefault(geometry, [])
        for wcs, fp in cached:
            if _max_shift_pix(wcs, image.wcs, image.shape) < FOOTPRINT_SHIFT_PIX:
                return fp
        cells, x, y = cells_on_image(hp, image)
        fp = DepthFootprint(self._slots(cells, create=True), x, y)
        if len(cached) >= 8:  # a few pointings of one geometry; oldest out
            cached.pop(0)
        cached.append((image.wcs.deepcopy(), fp))
        return fp

    def update(self, band: int, footprint: DepthFootprint, rms: np.ndarray,
               detection_sigma: float) -> DepthUpdates:
        """Fold one accepted image's limits in; returns the cells to store (those whose
        values moved by more than WRITE_TOLERANCE since last stored)."""
        best, worst, (w_best, w_worst) = self._arrays(band)
        limit = detection_sigma * rms[footprint.y, footprint.x].astype(float)
        valid = np.isfinite(limit)
        slots, limit = footprint.slots[valid], limit[valid]
        best[slots] = np.fmin(best[slots], limit)
        worst[slots] = np.fmax(worst[slots], limit)
        with np.errstate(invalid="ignore"):
            moved = (~(np.abs(best[slots] - w_best[slots]) <= WRITE_TOLERANCE * best[slots])
                     | ~(np.abs(worst[slots] - w_worst[slots]) <= WRITE_TOLERANCE * worst[slots]))
        slots = slots[moved]
        w_best[slots], w_worst[slots] = best[slots], worst[slots]
        return DepthUpdates(band=np.full(len(slots), band), cell=self._cells[slots],
                            limit=best[slots], worst=worst[slots])

    def load(self, nside: int, band: np.ndarray, cell: np.ndarray, limit: np.ndarray,
             worst: np.ndarray) -> None:
        """Restore stored values (on resume)."""
        if nside:
            self.nside = nside
            self.healpix = healpix_grid(nside)
        slots = self._slots(np.asarray(cell, dtype=np.int64), create=True)
        for b in np.unique(band):
            sel = band == b
            best_arr, worst_arr, (w_best, w_worst) = self._arrays(int(b))
            best_arr[slots[sel]] = w_best[slots[sel]] = limit[sel]
            worst_arr[slots[sel]] = w_worst[slots[sel]] = worst[sel]


def cells_on_image(hp: HEALPix, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nested HEALPix cells whose centre falls on the image (sorted), and the pixel
    (0-based x, y, rounded) at each centre.

    The search runs on cells ``COARSE_LEVELS`` coarser: those under a grid of pixels
    half a coarse cell apart, then, ring by ring, the neighbours of every coarse cell
    that has a fine cell on the image, until none is added (this reaches the slivers at
    the image edges and an all-sky image's horizon, which no grid point reaches: SIN
    squeezes the last degrees above it into a pixel). Coarse cells are split into
    their fine children, so the work is that of the cells on the image."""
    ny, nx = image.shape
    levels = min(COARSE_LEVELS, int(math.log2(hp.nside)))
    coarse = healpix_grid(hp.nside >> levels)
    cell_px = coarse.pixel_resolution.to_value(u.deg) / abs(image.pixel_scale_deg[1])
    step = max(1, int(cell_px / 2))
    gy, gx = np.meshgrid(np.unique(np.r_[0:ny:step, ny - 1]), np.unique(np.r_[0:nx:step, nx - 1]),
                         indexing="ij")
    with np.errstate(invalid="ignore"):
        ra, dec = image.pixel_to_sky(gx.ravel(), gy.ravel())
    good = np.isfinite(ra) & np.isfinite(dec)
    frontier = np.unique(healpix_cells(coarse.nside, ra[good], dec[good]))
    seen = frontier
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    while len(frontier):
        cells = ((frontier[:, None] << (2 * levels)) + np.arange(4**levels)).ravel()
        lon, lat = hp.healpix_to_lonlat(cells)
        with np.errstate(invalid="ignore"):
            x, y = image.sky_to_pixel(lon.to_value(u.deg), lat.to_value(u.deg))
        ok = np.isfinite(x) & np.isfinite(y)
        ok &= (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
        found.append((cells[ok], x[ok], y[ok]))
        productive = frontier[ok.reshape(len(frontier), -1).any(axis=1)]
        with np.errstate(invalid="ignore"):
            around = coarse.neighbours(productive).ravel()
        frontier = np.setdiff1d(around[around >= 0], seen)
        seen = np.union1d(seen, frontier)
    if not found:  # no pixel of the image is on the sky
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    cells, x, y = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.argsort(cells)
    return (cells[order], np.rint(x[order]).astype(np.int64),
            np.rint(y[order]).astype(np.int64))


def _max_shift_pix(old, new, shape: tuple[int, int]) -> float:
    """How far (pixels) the sky moved between two WCSs of one geometry, at most, over
    a 9x9 grid of the image (the change is a rotation of the sky: smooth); points that
    are off the sky in either (beyond an all-sky image's horizon) do not count."""
    ny, nx = shape
    gy, gx = (g.ravel() for g in np.meshgrid(np.linspace(0, ny - 1, 9),
                                              np.linspace(0, nx - 1, 9), indexing="ij"))
    with np.errstate(invalid="ignore"):
        ra, dec = old.all_pix2world(gx, gy, 0)
        x, y = new.all_world2pix(ra, dec, 0)
    shift = np.hypot(x - gx, y - gy)
    shift = shift[np.isfinite(shift)]
    return float(shift.max()) if len(shift) > len(gx) // 4 else math.inf
