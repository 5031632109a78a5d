"""Forced fits: the flux of a point source at given sky positions.

The model is the restoring beam centred exactly on the requested (sub-pixel) position;
only its amplitude is free, so the least-squares solution is linear and unbiased:

    A = sum(g d) / sum(g g)

over a small box of pixels around the position, with d the background-subtracted
image and g the unit-peak beam. The noise is correlated over the beam, so its error is
not the white-noise formula but

    var(A) = sigma^2 g^T R g / (g^T g)^2

with R the noise correlation between box pixels, exp(-Delta^T C^-1 Delta / 4) for a
pixel offset Delta and beam covariance C (the autocorrelation of the beam). R depends
only on pixel offsets within the box, so it is computed once per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trapline.image import PixelBeam


@dataclass
class ForcedMeasurements:
    """Forced-fit results, one per requested position.

    Attributes:
        x, y: pixel position of the request (0-based).
        peak, peak_err: amplitude of the beam-shaped model and its 1-sigma error (Jy/beam);
            for a point source this is also its integrated flux (Jy).
        rms: local noise at the position (Jy/beam).
        ok: the position is on the image with enough valid pixels.
    """

    x: np.ndarray
    y: np.ndarray
    peak: np.ndarray
    peak_err: np.ndarray
    rms: np.ndarray
    ok: np.ndarray

    @property
    def snr(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.peak / self.peak_err


def box_offsets(beam: PixelBeam) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dx, dy) of the fitting box: half-width 1.5 beam sigmas, at least 2."""
    half = max(2, math.ceil(1.5 * beam.sigma_maj))
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    return ox.ravel(), oy.ravel()


def noise_correlation(beam: PixelBeam, ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
    """Correlation between every pair of box pixels for beam-convolved white noise."""
    inv = np.linalg.inv(beam.covariance)
    dx = ox[:, None] - ox[None, :]
    dy = oy[:, None] - oy[None, :]
    q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
    return np.exp(-0.25 * q)


def forced_fit_pixels(
    residual: np.ndarray,
    rms: np.ndarray,
    beam: PixelBeam,
    x: np.ndarray,
    y: np.ndarray,
    min_valid_fraction: float = 0.5,
) -> ForcedMeasurements:
    """Forced fits at pixel positions on a background-subtracted image (Jy/beam)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    ny, nx = residual.shape
    ox, oy = box_offsets(beam)
    finite_pos = np.isfinite(x) & np.isfinite(y)
    ix = np.where(finite_pos, np.rint(np.nan_to_num(x)), -10**6).astype(np.int64)
    iy = np.where(finite_pos, np.rint(np.nan_to_num(y)), -10**6).astype(np.int64)
    px = ix[:, None] + ox[None, :]
    py = iy[:, None] + oy[None, :]
    inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    pxc, pyc = np.clip(px, 0, nx - 1), np.clip(py, 0, ny - 1)
    d = residual[pyc, pxc].astype(np.float64)
    valid = inside & np.isfinite(d)
    inv = np.linalg.inv(beam.covariance)
    dx = px - x[:, None]
    dy = py - y[:, None]
    g = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    g = np.where(valid, g, 0.0)
    d = np.where(valid, d, 0.0)
    gg = (g * g).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = (g * d).sum(axis=1) / gg
        corr = noise_correlation(beam, ox, oy)
        grg = np.einsum("np,pq,nq->n", g, corr, g, optimize=True)
        centre = np.clip(iy, 0, ny - 1), np.clip(ix, 0, nx - 1)
        local_rms = rms[centre].astype(np.float64)
        err = local_rms * np.sqrt(grg) / gg
    full = (g * g).sum(axis=1) if n else np.zeros(0)
    ideal = _ideal_gg(beam, ox, oy, x - ix, y - iy)
    ok = (
        finite_pos
        & (valid[np.arange(n), len(ox) // 2] if n else np.zeros(0, bool))
        & (full >= min_valid_fraction * ideal)
        & np.isfinite(amp)
        & np.isfinite(err)
    )
    return ForcedMeasurements(
        x=x,
        y=y,
        peak=np.where(ok, amp, np.nan),
        peak_err=np.where(ok, err, np.nan),
        rms=np.where(ok, local_rms, np.nan),
        ok=ok,
    )


def _ideal_gg(beam: PixelBeam, ox, oy, fx, fy) -> np.ndarray:
    """sum(g^2) the box would give with every pixel valid."""
    inv = np.linalg.inv(beam.covariance)
    dx = ox[None, :] - fx[:, None]
    dy = oy[None, :] - fy[:, None]
    g = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    return (g * g).sum(axis=1)
