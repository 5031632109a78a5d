"""Pixel measurements to sky quantities through the local WCS Jacobian.

Shapes and error ellipses are 2x2 covariances in pixel space; each is mapped to
(east, north) on the sky with the Jacobian of the WCS at the source, so rotated,
skewed and wide-field (all-sky SIN) images are measured correctly everywhere.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from trapline.image import FWHM_PER_SIGMA


def local_jacobians(
    wcs: WCS, x: np.ndarray, y: np.ndarray, step: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA, Dec (deg) at (x, y) and the (N, 2, 2) Jacobian d(east, north)/d(x, y) in deg/pixel."""
    n = len(x)
    pts = np.concatenate(
        [np.stack([x, y], 1), np.stack([x + step, y], 1), np.stack([x, y + step], 1)]
    )
    world = wcs.all_pix2world(pts, 0) if n else np.zeros((0, 2))
    ra, dec = world[:n, 0], world[:n, 1]
    cosd = np.cos(np.radians(dec))
    jac = np.empty((n, 2, 2))
    for col, sl in ((0, slice(n, 2 * n)), (1, slice(2 * n, 3 * n))):
        dra = (world[sl, 0] - ra + 180.0) % 360.0 - 180.0
        jac[:, 0, col] = dra * cosd / step
        jac[:, 1, col] = (world[sl, 1] - dec) / step
    return np.mod(ra, 360.0), dec, jac


def axes_covariance(sig_a: np.ndarray, sig_b: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(N, 2, 2) covariance of ellipses with sigmas ``sig_a`` along angle ``theta`` (rad
    from +x) and ``sig_b`` perpendicular."""
    c, s = np.cos(theta), np.sin(theta)
    cov = np.empty((len(theta), 2, 2))
    cov[:, 0, 0] = (sig_a * c) ** 2 + (sig_b * s) ** 2
    cov[:, 1, 1] = (sig_a * s) ** 2 + (sig_b * c) ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = (sig_a**2 - sig_b**2) * c * s
    return cov


def to_sky(jac: np.ndarray, cov_pix: np.ndarray) -> np.ndarray:
    """Map (N, 2, 2) pixel covariances to (east, north) sky covariances (deg^2)."""
    return jac @ cov_pix @ np.transpose(jac, (0, 2, 1))


def ellipse_from_covariance(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FWHM major, minor (same unit as sqrt(cov)) and PA (deg east of north, in [0, 180))
    of (N, 2, 2) Gaussian covariances in (east, north)."""
    a, b, c = cov[:, 0, 0], cov[:, 1, 1], cov[:, 0, 1]
    half_trace = 0.5 * (a + b)
    root = np.sqrt(0.25 * (a - b) ** 2 + c**2)
    major = FWHM_PER_SIGMA * np.sqrt(np.maximum(half_trace + root, 0.0))
    minor = FWHM_PER_SIGMA * np.sqrt(np.maximum(half_trace - root, 0.0))
    # Major-axis direction (east, north); PA measured from north through east.
    angle_from_east = 0.5 * np.arctan2(2.0 * c, a - b)
    pa = np.degrees(np.pi / 2.0 - angle_from_east) % 180.0
    return major, minor, pa


def beam_covariance(bmaj_deg: float, bmin_deg: float, bpa_deg: float) -> np.ndarray:
    """(2, 2) sky covariance (deg^2, east/north) of a beam given as FWHM and PA."""
    pa = np.radians(bpa_deg)
    major = np.array([np.sin(pa), np.cos(pa)])
    minor = np.array([np.cos(pa), -np.sin(pa)])
    smaj, smin = bmaj_deg / FWHM_PER_SIGMA, bmin_deg / FWHM_PER_SIGMA
    return smaj**2 * np.outer(major, major) + smin**2 * np.outer(minor, minor)


def deconvolve(cov_source: np.ndarray, cov_beam: np.ndarray):
    """Deconvolved FWHM major, minor and PA of sources (sky covariances, deg^2).

    Gaussian convolution adds covariances, so deconvolution subtracts the beam's. An
    axis whose deconvolved variance is not positive is unresolved and reported as 0;
    both unresolved gives NaN for the PA.
    """
    diff = cov_source - cov_beam[None]
    major, minor, pa = ellipse_from_covariance(diff)
    unresolved = major <= 0
    pa = np.where(unresolved, np.nan, pa)
    return major, minor, pa
