"""Paint point sources (and their sidelobes) as the restoring beam and build simulated
:class:`Image` objects."""

from __future__ import annotations

import math

import numpy as np

from trapline.image import Image, PixelBeam
from trapline.simulate.config import SimulationConfig
from trapline.simulate.effects import apparent_sky, image_effects, sidelobes
from trapline.simulate.noise import correlated_noise, inverse_covariance
from trapline.simulate.sky import SkyModel, derived_rng

BOX_HALF_WIDTH_SIGMAS = 5.0
"""Sources are painted in a box of +-5 major-axis sigmas (the beam is 4e-6 of peak there)."""


def paint_sources(
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    peak_jy: np.ndarray,
    pixel_beam: PixelBeam,
) -> None:
    """Add point sources to ``data`` (in place): the unit-peak beam times ``peak_jy``
    (Jy/beam), centred at sub-pixel 0-based positions (x, y), evaluated analytically at
    pixel centres in a local box around each source. Sources of zero flux are skipped;
    boxes are clipped at the image edge. ``data`` must be C-contiguous.
    """
    if not data.flags.c_contiguous:
        raise ValueError("paint_sources needs a C-contiguous array")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    peak = np.asarray(peak_jy, float)
    keep = (peak != 0) & np.isfinite(peak) & np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return
    x, y, peak = x[keep], y[keep], peak[keep]
    ny, nx = data.shape
    h = int(math.ceil(BOX_HALF_WIDTH_SIGMAS * pixel_beam.sigma_maj))
    off = np.arange(-h, h + 1)
    ix = np.rint(x).astype(int)[:, None] + off  # (n, m) columns of each box
    iy = np.rint(y).astype(int)[:, None] + off  # (n, m) rows of each box
    dx = (ix - x[:, None])[:, None, :]  # (n, 1, m)
    dy = (iy - y[:, None])[:, :, None]  # (n, m, 1)
    a, b, c = inverse_covariance(pixel_beam)
    values = peak[:, None, None] * np.exp(-0.5 * (a * dx * dx + 2.0 * b * dx * dy + c * dy * dy))
    inside = ((ix >= 0) & (ix < nx))[:, None, :] & ((iy >= 0) & (iy < ny))[:, :, None]
    flat = iy[:, :, None] * nx + ix[:, None, :]
    np.add.at(data.reshape(-1), flat[inside], values[inside].astype(data.dtype))


def outside_sky(config: SimulationConfig) -> np.ndarray | None:
    """All-sky mode: boolean (size, size) mask of the pixels beyond the horizon circle."""
    radius = config.sky_radius_pix
    if radius is None:
        return None
    cx, cy = config.center_pix
    gx = np.arange(config.size) - cx
    gy = np.arange(config.size) - cy
    return gx[None, :] ** 2 + gy[:, None] ** 2 > radius * radius


def render_image(
    config: SimulationConfig,
    sky: SkyModel,
    epoch: int,
    band: int,
    rng: np.random.Generator | None = None,
    noise: bool = True,
) -> Image:
    """Render one simulated image (Jy/beam, float32) of the sky at an epoch and band,
    as the instrument sees it (:mod:`~trapline.simulate.effects`).

    Args:
        config: the simulation.
        sky: the sources (from :func:`make_sky`).
        epoch, band: which image (0-based).
        rng: noise generator; default the one derived from ``config.seed``, epoch and band
            (so images can be rendered in any order and still be identical).
        noise: add the correlated noise (False: sources only, for tests).
    """
    if not (0 <= epoch < config.epochs and 0 <= band < config.bands):
        raise IndexError(f"epoch {epoch}, band {band} is outside the simulation")
    wcs = config.wcs(epoch)
    pbeam = config.pixel_beam(wcs)
    shape = (config.size, config.size)
    if noise:
        if rng is None:
            rng = derived_rng(config.seed, 1, epoch, band)
        data = correlated_noise(shape, pbeam, config.rms_jy, rng)
    else:
        data = np.zeros(shape, dtype=np.float32)
    freq = float(config.freqs_hz[band])
    effects = image_effects(config, epoch, band)
    apparent = apparent_sky(config, sky, epoch, band, effects)
    paint_sources(data, apparent.x, apparent.y, apparent.apparent_peak_jy, pbeam)
    artefacts = sidelobes(config, apparent, effects, sky.source_id)
    paint_sources(data, artefacts.x, artefacts.y, artefacts.peak_jy, pbeam)
    mask = outside_sky(config)
    if mask is not None:
        data[mask] = np.nan
    return Image(
        data=data,
        wcs=wcs,
        beam=config.beam,
        time_mjd=config.time_mjd(epoch),
        freq_hz=freq,
        bandwidth_hz=config.bandwidth_hz,
        integration_s=config.cadence_s,
        telescope=config.telescope,
        meta={"epoch": epoch, "band": band, "simulated": True},
    )
