"""Source populations: where the sources are and how bright, on the sky.

:func:`make_sky` draws the sources of a :class:`~trapline.simulate.config.SimulationConfig`:
isolated positions and, per population, a light curve at the centre frequency:

* ``steady``: constant; S/N log-uniform (or power law) between ``steady_snr``.
* ``variable``: lognormal epoch-to-epoch modulation of a mean flux (``modulation_index``).
* ``transient``: zero, then on for a few epochs at >= ``transient_snr[0]`` sigma, then zero.
* ``fading``: bright at epoch 0, decaying exponentially.

Every source has a spectral index; the true peak in a band is
``flux * (freq / freq_hz) ** spectral_index``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trapline.errors import ConfigError
from trapline.simulate.config import SimulationConfig

POPULATIONS = ("steady", "variable", "transient", "fading")

SOURCE_COLUMNS = [
    "source_id",
    "population",
    "ra",
    "dec",
    "x",
    "y",
    "base_flux_jy",
    "spectral_index",
    "start_epoch",
    "end_epoch",
    "modulation_index",
    "decay_epochs",
]
"""Columns of sources.csv (see :meth:`SkyModel.to_frame`)."""

def derived_rng(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for one purpose, e.g. ``(1, epoch, band)`` for an image's
    noise: the same (seed, key) always gives the same stream, whatever else is drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def lognormal(
    rng: np.random.Generator, index: float, shape: int | tuple[int, ...]
) -> np.ndarray:
    """Log-normal factors of mean 1 and std ``index`` (exactly 1 when ``index`` is 0)."""
    s = math.sqrt(math.log1p(index**2))
    return np.exp(s * rng.standard_normal(shape) - 0.5 * s * s)


@dataclass
class SkyModel:
    """The simulated sources. Arrays are per source (length n) or per source and epoch
    (shape (n, epochs)); positions are 0-based pixels of the simulation WCS.

    Attributes:
        source_id: 0..n-1, ordered by population (steady, variable, transient, fading).
        population: population name of each source.
        x, y: nominal position (pixels); ra, dec: the same on the sky (deg).
        base_flux_jy: peak flux at ``ref_freq_hz`` (Jy/beam): steady: the flux;
            variable: the mean; transient: while on; fading: at epoch 0.
        spectral_index: alpha, flux ~ freq**alpha.
        start_epoch, end_epoch: first and last (inclusive) epoch a transient is on; -1 for
            the other populations.
        modulation_index: variables' std/mean; NaN for the others.
        decay_epochs: fading e-folding time (epochs); NaN for the others.
        flux_jy: light curve at ``ref_freq_hz`` (Jy/beam), shape (n, epochs).
        dx, dy: position jitter (pixels) of each source in each epoch, shape (n, epochs).
        ref_freq_hz: frequency the fluxes refer to (Hz).
    """

    source_id: np.ndarray
    population: np.ndarray
    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    base_flux_jy: np.ndarray
    spectral_index: np.ndarray
    start_epoch: np.ndarray
    end_epoch: np.ndarray
    modulation_index: np.ndarray
    decay_epochs: np.ndarray
    flux_jy: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    ref_freq_hz: float

    def __len__(self) -> int:
        return len(self.source_id)

    def peak_jy(self, epoch: int, freq_hz: float) -> np.ndarray:
        """True peak flux (Jy/beam) of every source at an epoch and frequency; 0 when off."""
        return self.flux_jy[:, epoch] * (freq_hz / self.ref_freq_hz) ** self.spectral_index

    def positions(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Rendered (jittered) 0-based pixel x, y of every source at an epoch."""
        return self.x + self.dx[:, epoch], self.y + self.dy[:, epoch]

    def to_frame(self) -> pd.DataFrame:
        """One row per source with :data:`SOURCE_COLUMNS` (what sources.csv holds)."""
        transient = self.start_epoch >= 0
        return pd.DataFrame(
            {
                "source_id": self.source_id,
                "population": self.population,
                "ra": self.ra,
                "dec": self.dec,
                "x": self.x,
                "y": self.y,
                "base_flux_jy": self.base_flux_jy,
                "spectral_index": self.spectral_index,
                "start_epoch": pd.Series(self.start_epoch).where(transient).astype("Int64"),
                "end_epoch": pd.Series(self.end_epoch).where(transient).astype("Int64"),
                "modulation_index": self.modulation_index,
                "decay_epochs": self.decay_epochs,
            },
            columns=SOURCE_COLUMNS,
        )


def make_sky(config: SimulationConfig) -> SkyModel:
    """Draw the sources of a simulation (deterministic for ``config.seed``).

    Raises:
        ConfigError: the sources do not fit in the field at the minimum separation.
    """
    wcs = config.wcs()
    fwhm_pix = config.fwhm_pix
    jitter_pix = config.jitter_arcsec / 3600.0 / config.pixel_deg
    margin = config.edge_margin_beams * fwhm_pix + 4.0 * jitter_pix
    x, y = _place_sources(
        derived_rng(config.seed, 0, 0),
        config.n_sources,
        config.size,
        margin=margin,
        min_sep=config.min_separation_beams * fwhm_pix,
        center=config.center_pix,
        radius=config.sky_radius_pix,
    )
    ra, dec = wcs.all_pix2world(x, y, 0)
    ra = np.mod(ra, 360.0)

    epochs = np.arange(config.epochs)
    band_ratio = config.freqs_hz / config.freq_hz
    counts = [config.n_steady, config.n_variable, config.n_transient, config.n_fading]
    parts = []
    for k, (name, n) in enumerate(zip(POPULATIONS, counts, strict=True)):
        rng = derived_rng(config.seed, 0, k + 1)
        alpha = config.spectral_index + config.spectral_index_scatter * rng.standard_normal(n)
        # Scale so the S/N limits hold in the faintest band.
        faintest = np.min(band_ratio[None, :] ** alpha[:, None], axis=1) if n else np.ones(0)
        unit = config.rms_jy / faintest
        part = {
            "alpha": alpha,
            "start": np.full(n, -1),
            "end": np.full(n, -1),
            "mod": np.full(n, np.nan),
            "decay": np.full(n, np.nan),
        }
        if name == "steady":
            lo, hi = config.steady_snr
            base = unit * _power_law(rng, lo, hi, config.steady_slope, n)
            curve = np.repeat(base[:, None], config.epochs, axis=1)
        elif name == "variable":
            base = unit * _power_law(rng, *config.variable_snr, 1.0, n)
            curve = base[:, None] * lognormal(rng, config.modulation_index, (n, config.epochs))
            part["mod"] = np.full(n, config.modulation_index)
        elif name == "transient":
            base = unit * _power_law(rng, *config.transient_snr, 1.0, n)
            start, end = _transient_epochs(rng, config, n)
            on = (epochs[None, :] >= start[:, None]) & (epochs[None, :] <= end[:, None])
            curve = np.where(on, base[:, None], 0.0)
            part["start"], part["end"] = start, end
        else:
            base = unit * _power_law(rng, *config.fading_snr, 1.0, n)
            decay = rng.uniform(*config.fading_decay_epochs, size=n)
            curve = base[:, None] * np.exp(-epochs[None, :] / decay[:, None])
            part["decay"] = decay
        part.update(name=np.full(n, name), base=base, curve=curve.reshape(n, config.epochs))
        parts.append(part)

    n = config.n_sources
    jrng = derived_rng(config.seed, 0, 9)
    if jitter_pix > 0:
        limit = 4.0 * jitter_pix
        dx = np.clip(jrng.normal(0.0, jitter_pix, (n, config.epochs)), -limit, limit)
        dy = np.clip(jrng.normal(0.0, jitter_pix, (n, config.epochs)), -limit, limit)
    else:
        dx = np.zeros((n, config.epochs))
        dy = np.zeros((n, config.epochs))

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    return SkyModel(
        source_id=np.arange(n),
        population=cat("name").astype(str),
        x=x,
        y=y,
        ra=ra,
        dec=dec,
        base_flux_jy=cat("base"),
        spectral_index=cat("alpha"),
        start_epoch=cat("start").astype(int),
        end_epoch=cat("end").astype(int),
        modulation_index=cat("mod"),
        decay_epochs=cat("decay"),
        flux_jy=np.concatenate([p["curve"] for p in parts], axis=0),
        dx=dx,
        dy=dy,
        ref_freq_hz=config.freq_hz,
    )


def _power_law(rng: np.random.Generator, lo: float, hi: float, slope: float, n: int) -> np.ndarray:
    """n draws from dN/dS ~ S**-slope on [lo, hi] (slope 1: log-uniform)."""
    u = rng.uniform(size=n)
    if lo == hi:
        return np.full(n, lo)
    if abs(slope - 1.0) < 1e-12:
        return lo * (hi / lo) ** u
    g = 1.0 - slope
    return (lo**g + u * (hi**g - lo**g)) ** (1.0 / g)


def _transient_epochs(
    rng: np.random.Generator, config: SimulationConfig, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and last (inclusive) epoch each transient is on."""
    last = config.epochs - 1
    if config.transient_start_epoch is not None:
        start = np.full(n, config.transient_start_epoch)
    elif config.epochs == 1:
        start = np.zeros(n, dtype=int)
    else:
        start = rng.integers(1, config.epochs, size=n)
    if config.transient_duration is not None:
        duration = np.full(n, config.transient_duration)
    else:
        duration = rng.integers(1, config.max_transient_duration + 1, size=n)
    return start, np.minimum(start + duration - 1, last)


def _place_sources(
    rng: np.random.Generator,
    n: int,
    size: int,
    margin: float,
    min_sep: float,
    center: tuple[float, float],
    radius: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random positions (0-based pixels) at least ``min_sep`` apart and ``margin`` from the
    edge (and, with ``radius``, inside the circle of that radius around ``center``)."""
    lo, hi = margin, size - 1.0 - margin
    inner = None if radius is None else radius - margin
    if hi <= lo or (inner is not None and inner <= 0):
        raise ConfigError(
            f"simulation: no room for sources: the {size}-pixel image is smaller than the "
            f"edge margin ({margin:.1f} pixels); lower edge_margin_beams or the beam"
        )
    cell = max(min_sep, 1.0)
    grid: dict[tuple[int, int], list[int]] = {}
    xs: list[float] = []
    ys: list[float] = []
    min_sep2 = min_sep * min_sep
    batch = max(4 * n, 64)
    for _ in range(100):
        if len(xs) == n:
            break
        cand = rng.uniform(lo, hi, size=(batch, 2))
        if inner is not None:
            r2 = (cand[:, 0] - center[0]) ** 2 + (cand[:, 1] - center[1]) ** 2
            cand = cand[r2 <= inner * inner]
        for cx, cy in cand:
            gx, gy = int(cx // cell), int(cy // cell)
            if any(
                (xs[j] - cx) ** 2 + (ys[j] - cy) ** 2 < min_sep2
                for ix in (gx - 1, gx, gx + 1)
                for iy in (gy - 1, gy, gy + 1)
                for j in grid.get((ix, iy), ())
            ):
                continue
            grid.setdefault((gx, gy), []).append(len(xs))
            xs.append(float(cx))
            ys.append(float(cy))
            if len(xs) == n:
                break
    if len(xs) < n:
        raise ConfigError(
            f"simulation: cannot place {n} sources {min_sep:.1f} pixels apart in the field "
            f"(placed {len(xs)}); use fewer sources, a bigger image or a smaller "
            "min_separation_beams"
        )
    return np.array(xs), np.array(ys)
