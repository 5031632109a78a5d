"""Spherical geometry on unit vectors, no special cases at RA 0/360 or at the poles, and
the HEALPix cell of a position: the pipeline and the storage both use it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix

from trapline.scalars import FloatOrArray, scalar_or_array

if TYPE_CHECKING:
    from trapline.image import Image


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors of RA/Dec (deg)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cosd = np.cos(dec)
    return np.stack([cosd * np.cos(ra), cosd * np.sin(ra), np.sin(dec)], axis=-1)


def separation_deg(ra1, dec1, ra2, dec2) -> FloatOrArray:
    """Angular separation (deg), accurate at all separations (Vincenty); a float for
    scalar input."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(dra),
                   np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(dra))
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(dra)
    return scalar_or_array(np.degrees(np.arctan2(num, den)))


def offsets_deg(ra0, dec0, ra, dec) -> tuple[FloatOrArray, FloatOrArray]:
    """East and north offsets (deg) of (ra, dec) in the tangent plane at (ra0, dec0).

    Gnomonic projection: exact directions at the reference point, so the de Ruiter
    radius is right across RA 0/360 and next to a pole. Floats for scalar input.
    """
    ra0, dec0, ra, dec = (np.radians(np.asarray(v, float)) for v in (ra0, dec0, ra, dec))
    dra = ra - ra0
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(dra)
    east = np.cos(dec) * np.sin(dra) / cosc
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(dra)) / cosc
    return scalar_or_array(np.degrees(east)), scalar_or_array(np.degrees(north))


def shift_position(ra0, dec0, east_deg, north_deg) -> tuple[FloatOrArray, FloatOrArray]:
    """Inverse of :func:`offsets_deg`: the position (deg) at tangent-plane offsets (deg)
    from (ra0, dec0); floats for scalar input."""
    ra0, dec0 = np.radians(np.asarray(ra0, float)), np.radians(np.asarray(dec0, float))
    x, y = np.radians(np.asarray(east_deg, float)), np.radians(np.asarray(north_deg, float))
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc, cosc = np.sin(c), np.cos(c)
        dec = np.where(
            rho > 0,
            np.arcsin(cosc * np.sin(dec0) + np.where(rho > 0, y * sinc * np.cos(dec0) / rho, 0)),
            dec0,
        )
        ra = ra0 + np.arctan2(x * sinc, rho * np.cos(dec0) * cosc - y * np.sin(dec0) * sinc)
    return scalar_or_array(np.mod(np.degrees(ra), 360.0)), scalar_or_array(np.degrees(dec))


def healpix_cells(nside: int, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """NESTED HEALPix cell index at ``nside`` of positions (deg); -1 where not finite."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    cells = np.full(ra.shape, -1, dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        cells[ok] = healpix_grid(nside).lonlat_to_healpix(np.mod(ra[ok], 360.0) * u.deg,
                                         np.clip(dec[ok], -90.0, 90.0) * u.deg)
    return cells


@lru_cache(maxsize=16)
def healpix_grid(nside: int) -> HEALPix:
    """The NESTED HEALPix grid at ``nside`` (made once per nside)."""
    return HEALPix(nside=nside, order="nested")


@dataclass
class FieldCircle:
    """Centre (deg) and radius (deg) of the circle holding an image's valid pixels."""

    ra: float
    dec: float
    radius_deg: float


def field_circle(image: Image) -> FieldCircle:
    """The circle around the image centre that holds all its valid pixels."""
    ny, nx = image.shape
    ra, dec = image.pixel_to_sky(np.array([(nx - 1) / 2]), np.array([(ny - 1) / 2]))
    corners_x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2, 0, nx - 1, (nx - 1) / 2])
    corners_y = np.array([0, 0, ny - 1, ny - 1, 0, (ny - 1) / 2, (ny - 1) / 2, ny - 1])
    with np.errstate(invalid="ignore"):
        cra, cdec = image.pixel_to_sky(corners_x, corners_y)

    sep = separation_deg(ra[0], dec[0], cra, cdec)
    radius = float(np.nanmax(sep)) if np.isfinite(sep).any() else 180.0
    if not np.isfinite(sep).all():
        radius = 90.0  # all-sky images: corners beyond the horizon have no position
    return FieldCircle(float(ra[0]), float(dec[0]), radius)
