"""Correlated image noise: white Gaussian noise convolved with the restoring beam.

The convolution is circular, done with real FFTs on a grid padded to a fast FFT length
and then cropped, so every pixel has the same variance ``rms_white**2 * sum(kernel**2)``.
The result is scaled analytically by ``rms / sqrt(sum(kernel**2))`` (not by the realised
std, which would bias it), so the expected pixel rms is exactly the requested one. The
autocorrelation of the noise is the beam convolved with itself: for a circular beam of
sigma ``s`` (pixels), ``exp(-d**2 / (4 s**2))`` at a lag of ``d`` pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft

from trapline.image import PixelBeam

KERNEL_HALF_WIDTH_SIGMAS = 6.0
"""The convolution kernel is cut at this many major-axis sigmas (exp(-18) ~ 1.5e-8)."""


def gaussian_kernel(pixel_beam: PixelBeam, half_width: int | None = None) -> np.ndarray:
    """Unit-peak elliptical Gaussian of the beam, shape (2h+1, 2h+1), centred, [y, x].

    Args:
        pixel_beam: beam sigmas (pixels) and angle.
        half_width: h (pixels); default ``ceil(6 * sigma_maj)``.
    """
    if half_width is None:
        half_width = int(math.ceil(KERNEL_HALF_WIDTH_SIGMAS * pixel_beam.sigma_maj))
    off = np.arange(-half_width, half_width + 1, dtype=float)
    a, b, c = inverse_covariance(pixel_beam)
    dx, dy = off[None, :], off[:, None]
    return np.exp(-0.5 * (a * dx * dx + 2.0 * b * dx * dy + c * dy * dy))


def inverse_covariance(pixel_beam: PixelBeam) -> tuple[float, float, float]:
    """(a, b, c) with ``[[a, b], [b, c]]`` the inverse pixel covariance of the beam, (x, y)."""
    inv = np.linalg.inv(pixel_beam.covariance)
    return float(inv[0, 0]), float(inv[0, 1]), float(inv[1, 1])


@lru_cache(maxsize=8)
def _transfer(
    ny: int, nx: int, sigma_maj: float, sigma_min: float, theta: float
) -> tuple[np.ndarray, float]:
    """Real FFT of the beam kernel placed periodically on an (ny, nx) grid, and
    ``sqrt(sum(kernel**2))``. The kernel is symmetric, so its transform is real."""
    beam = PixelBeam(sigma_maj, sigma_min, theta)
    h = int(math.ceil(KERNEL_HALF_WIDTH_SIGMAS * sigma_maj))
    h = min(h, (min(ny, nx) - 1) // 2)
    kernel = gaussian_kernel(beam, h)
    grid = np.zeros((ny, nx))
    grid[: 2 * h + 1, : 2 * h + 1] = kernel
    grid = np.roll(grid, (-h, -h), axis=(0, 1))  # kernel centre on pixel (0, 0)
    transfer = scipy.fft.rfft2(grid).real.astype(np.float32)
    transfer.setflags(write=False)
    return transfer, float(np.sqrt(np.sum(kernel**2)))


def correlated_noise(
    shape: tuple[int, int], pixel_beam: PixelBeam, rms_jy: float, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise correlated like an interferometric image.

    Args:
        shape: (ny, nx) pixels.
        pixel_beam: the restoring beam in pixels.
        rms_jy: expected pixel rms (Jy/beam).
        rng: source of the white noise.

    Returns:
        float32 array of shape ``shape`` (Jy/beam).
    """
    ny, nx = shape
    py = scipy.fft.next_fast_len(ny, real=True)
    px = scipy.fft.next_fast_len(nx, real=True)
    transfer, norm = _transfer(py, px, pixel_beam.sigma_maj, pixel_beam.sigma_min, pixel_beam.theta)
    white = rng.standard_normal((py, px), dtype=np.float32)
    spectrum = scipy.fft.rfft2(white, overwrite_x=True)
    spectrum *= transfer
    smooth = scipy.fft.irfft2(spectrum, s=(py, px), overwrite_x=True)
    out = smooth[:ny, :nx]
    out *= np.float32(rms_jy / norm)
    return np.ascontiguousarray(out, dtype=np.float32)


def noise_correlation(pixel_beam: PixelBeam, dx: float, dy: float) -> float:
    """Theoretical correlation coefficient of the noise between pixels (dx, dy) apart:
    ``exp(-d^T C^-1 d / 4)`` with C the beam covariance (continuous limit)."""
    a, b, c = inverse_covariance(pixel_beam)
    return math.exp(-0.25 * (a * dx * dx + 2.0 * b * dx * dy + c * dy * dy))
