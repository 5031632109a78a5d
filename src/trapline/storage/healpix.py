"""HEALPix indexing of source positions and cone-search index ranges.

``source.healpix`` holds the NESTED index at nside 2**16 (~3.2 arcsec pixels). In the
NESTED scheme a pixel at nside 2**16 divided by 4**k is its parent at nside
2**(16 - k), so a coarse pixel is a contiguous range of fine indices: a cone search
covers the cone with a few coarse pixels and asks for those index ranges.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
from sqlalchemy import ColumnElement, or_

from trapline.geometry import healpix_cells, healpix_grid, separation_deg
from trapline.scalars import FloatOrArray
from trapline.storage.models import HEALPIX_LEVEL, Source

__all__ = ["NSIDE", "cone_level", "cone_pixels", "cone_ranges", "cone_where", "healpix_index"]

NSIDE = 2**HEALPIX_LEVEL


def healpix_index(ra: FloatOrArray, dec: FloatOrArray) -> int | np.ndarray:
    """NESTED HEALPix index at nside 2**16 of positions (deg); -1 where not finite. An
    int for scalar input, else an int64 array."""
    cells = healpix_cells(NSIDE, ra, dec)
    return int(cells[0]) if np.ndim(ra) == 0 else cells.reshape(np.shape(ra))


def cone_level(radius_deg: float) -> int:
    """HEALPix level (nside 2**level) whose pixels are one to two cone radii wide, so a
    cone search visits roughly 10-20 of them."""
    radius = math.radians(min(radius_deg, 180.0))
    # log2(radius) rather than log2(1 / radius): a subnormal radius must give the finest
    # level, not an overflow.
    if not radius > 0:
        return HEALPIX_LEVEL
    return max(0, min(HEALPIX_LEVEL, math.floor(-math.log2(radius))))


# Largest distance from a pixel's centre to its edge, in units of the pixel resolution
# (sqrt of the pixel area): measured ~1.04 at nside >= 64, less below; 1.2 is safe.
MAX_PIXEL_RADIUS = 1.2


def cone_pixels(level: int, ra: float, dec: float, radius_deg: float) -> np.ndarray:
    """NESTED pixels at nside 2**level that may hold positions within ``radius_deg``
    of (ra, dec) (deg): a superset of the pixels the cone overlaps, sorted.

    Not astropy_healpix's cone_search_lonlat, which can miss pixels that the cone
    only grazes (astropy/astropy-healpix#287). Instead a flood fill from the centre's
    pixel through neighbours keeps every pixel whose centre is within the radius plus
    the largest pixel radius: that contains each overlapping pixel, and the
    overlapping pixels are connected, so the fill reaches them all."""
    hp = healpix_grid(2**level)
    reach = radius_deg + MAX_PIXEL_RADIUS * hp.pixel_resolution.to_value(u.deg)
    found = healpix_cells(2**level, ra, dec)
    frontier = found
    while frontier.size:
        with np.errstate(invalid="ignore"):  # missing neighbours (-1) at low nside
            near = np.unique(hp.neighbours(frontier).ravel())
        near = near[(near >= 0) & ~np.isin(near, found)]
        lon, lat = hp.healpix_to_lonlat(near)
        frontier = near[separation_deg(ra, dec, lon.to_value(u.deg), lat.to_value(u.deg)) <= reach]
        found = np.concatenate([found, frontier])
    return np.sort(found)


def cone_ranges(ra: float, dec: float, radius_deg: float) -> list[tuple[int, int]]:
    """Inclusive ranges (lo, hi) of nside-2**16 NESTED indices that together contain
    every position within ``radius_deg`` of (ra, dec) (deg); adjacent ranges merged."""
    if not radius_deg > 0:
        raise ValueError(f"cone radius must be positive, got {radius_deg} deg")
    level = cone_level(radius_deg)
    scale = 4 ** (HEALPIX_LEVEL - level)
    ranges: list[tuple[int, int]] = []
    for p in cone_pixels(level, ra, dec, min(radius_deg, 180.0)).tolist():
        lo, hi = p * scale, (p + 1) * scale - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def cone_where(ra: float, dec: float, radius_deg: float) -> ColumnElement[bool]:
    """SQL condition on ``source.healpix`` holding every source within ``radius_deg`` of
    (ra, dec) (deg): a superset, to be cut on the exact distance (:func:`separation_deg`)."""
    return or_(*(Source.healpix.between(lo, hi) for lo, hi in cone_ranges(ra, dec, radius_deg)))
