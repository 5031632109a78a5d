"""Variability thresholds from a run's own distributions (Rowlinson et al. 2019,
"Identifying transient and variable sources in radio images", A&C 27, 111).

Most sources are steady, so log10(eta) and log10(V) of a field's sources follow a
Gaussian; variables stand out in its upper tail. Fitting a Gaussian to each, with
sigma clipping so the variables themselves do not widen it, gives thresholds
``10**(mu + n_sigma * sigma)`` that adapt to the data (its noise, cadence and
calibration) instead of fixed numbers.
"""

from __future__ import annotations

import math

import numpy as np

CLIP_SIGMA = 3.0
MIN_VALUES = 3
MAX_ITERATIONS = 50


def _truncation_factor(k: float) -> float:
    """std of a unit Gaussian cut at +-k sigma: clipped samples are narrower by this."""
    phi = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    inside = math.erf(k / math.sqrt(2.0))
    return math.sqrt(1.0 - 2.0 * k * phi / inside)


def fit_log_gaussian(values: np.ndarray, clip_sigma: float = CLIP_SIGMA) -> tuple[float, float]:
    """Mean and standard deviation (both in dex) of a Gaussian fitted to log10 of the
    positive, finite ``values``, iteratively clipped at ``clip_sigma``.

    The clipping starts from the median and the MAD (robust against a tail of
    outliers) and stops when the kept set no longer changes; the standard deviation of
    the kept values is corrected for the cut (a Gaussian clipped at 3 sigma has a
    standard deviation 1.3% below its own). Raises ValueError with fewer than
    ``MIN_VALUES`` usable values or no spread.
    """
    arr = np.asarray(values, float)
    x = np.log10(arr[np.isfinite(arr) & (arr > 0)])
    if x.size < MIN_VALUES:
        raise ValueError(f"need at least {MIN_VALUES} positive values to fit, got {x.size}")
    mu = float(np.median(x))
    sigma = 1.4826 * float(np.median(np.abs(x - mu)))
    if sigma == 0:
        sigma = float(np.std(x))
    if sigma == 0:
        raise ValueError("all values are equal: no spread to fit")
    factor = _truncation_factor(clip_sigma)
    keep: np.ndarray | None = None
    for _ in range(MAX_ITERATIONS):
        new = np.abs(x - mu) <= clip_sigma * sigma
        if new.sum() < MIN_VALUES or (keep is not None and np.array_equal(new, keep)):
            break
        keep = new
        mu = float(x[keep].mean())
        sigma = float(x[keep].std(ddof=1)) / factor
    return mu, sigma


def derived_thresholds(eta: np.ndarray, v: np.ndarray, n_sigma: float) -> tuple[float, float]:
    """(eta, V) thresholds, dimensionless: ``10**(mu + n_sigma * sigma)`` of the
    sigma-clipped Gaussian fits to log10(eta) and log10(V)."""
    mu_eta, sigma_eta = fit_log_gaussian(eta)
    mu_v, sigma_v = fit_log_gaussian(v)
    return 10.0 ** (mu_eta + n_sigma * sigma_eta), 10.0 ** (mu_v + n_sigma * sigma_v)
