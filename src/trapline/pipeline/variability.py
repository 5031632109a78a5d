"""Variability candidates: sources whose eta and V first cross both thresholds.

eta is a reduced chi^2 about the weighted mean: for a steady source it follows
chi^2_{N-1} / (N-1), whose tail above a fixed threshold is wide for few points (above 3
at 4 points: 2.9%, so one steady source in 35 is flagged when it has its fourth point,
and more as it is tested again at every image). So eta must also be significant for the
number of points: its chance under chi^2_{N-1} below ``[variability] false_alarm_p``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtri_exp
from scipy.stats import chi2

from trapline.pipeline.config import VariabilitySection
from trapline.pipeline.skymodel import SkyModel
from trapline.records import BandStatistics, Candidates


def over_thresholds(n: np.ndarray, eta: np.ndarray, v: np.ndarray,
                    cfg: VariabilitySection) -> np.ndarray:
    """The flag rule: enough points, eta (integrated flux) above its threshold and
    significant for the number of points, V above its threshold."""
    n = np.asarray(n)
    with np.errstate(invalid="ignore"):
        over = ((n >= cfg.min_points) & (np.asarray(eta) > cfg.eta_threshold)
                & (np.asarray(v) > cfg.v_threshold))
        if cfg.false_alarm_p > 0 and over.any():
            over[over] = np.asarray(eta)[over] > significant_eta(n[over], cfg.false_alarm_p)
    return over


def eta_sigma(n: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """The significance of ``eta`` over ``n`` points in Gaussian sigma: the normal
    deviate with the tail chance of chi^2 with n-1 degrees of freedom at (n-1) eta
    (Wilson-Hilferty's approximation where that chance underflows)."""
    k = np.asarray(n, dtype=float) - 1.0
    x = k * np.asarray(eta, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = -ndtri_exp(chi2.logsf(x, k))
        approx = (np.cbrt(x / k) - (1.0 - 2.0 / (9.0 * k))) / np.sqrt(2.0 / (9.0 * k))
    return np.where(np.isfinite(exact), exact, approx)


def significant_eta(n: np.ndarray, p: float) -> np.ndarray:
    """Per number of points ``n``, the eta a steady source exceeds with chance ``p``."""
    n = np.asarray(n, dtype=np.int64)
    values, index = np.unique(n, return_inverse=True)
    return np.array([_significant_eta(int(k), p) for k in values])[index]


@lru_cache(maxsize=4096)
def _significant_eta(n: int, p: float) -> float:
    return float(chi2.isf(p, n - 1) / (n - 1)) if n >= 2 else np.inf


def variable_candidates(sky: SkyModel, band: int, stats: BandStatistics,
                        cfg: VariabilitySection) -> Candidates:
    """Candidates for the sources of ``stats`` that cross the thresholds for the first
    time in this band (each source is reported once per band). Significance: that of
    eta for the number of points (:func:`eta_sigma`)."""
    over = over_thresholds(stats.n, stats.eta_int, stats.v_int, cfg)
    if not over.any():
        return Candidates.empty()
    rows = sky.rows_of(stats.source_id[over])
    flagged = sky.band(band).full("flagged")
    first = ~flagged[rows]
    flagged[rows] = True
    sel = np.flatnonzero(over)[first]
    n = len(sel)
    return Candidates(
        source_id=stats.source_id[sel], kind=np.full(n, "variable", dtype=object),
        level=np.full(n, "eta+v", dtype=object), band=np.full(n, band, dtype=np.int64),
        significance=eta_sigma(stats.n[sel], stats.eta_int[sel]),
        flux=stats.sf_int[sel] / stats.n[sel], limit=np.full(n, np.nan),
        precovery_flux=np.full(n, np.nan), precovery_flux_err=np.full(n, np.nan),
        rise_sigma=np.full(n, np.nan), n_precovery=np.zeros(n, dtype=np.int64),
        n_bands=np.ones(n, dtype=np.int64), reason=np.full(n, "", dtype=object),
    )
