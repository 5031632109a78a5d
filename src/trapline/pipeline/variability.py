"""Variability candidates: sources whose eta and V first cross both thresholds."""

from __future__ import annotations

import numpy as np

from trapline.pipeline.config import VariabilitySection
from trapline.pipeline.skymodel import SkyModel
from trapline.records import BandStatistics, Candidates


def over_thresholds(n: np.ndarray, eta: np.ndarray, v: np.ndarray,
                    cfg: VariabilitySection) -> np.ndarray:
    """The flag rule: enough points, eta (integrated flux) and V above their thresholds."""
    with np.errstate(invalid="ignore"):
        return ((np.asarray(n) >= cfg.min_points) & (np.asarray(eta) > cfg.eta_threshold)
                & (np.asarray(v) > cfg.v_threshold))


def variable_candidates(sky: SkyModel, band: int, stats: BandStatistics,
                        cfg: VariabilitySection) -> Candidates:
    """Candidates for the sources of ``stats`` that cross the thresholds for the first
    time in this band (each source is reported once per band). Significance: eta over
    its threshold."""
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
        significance=stats.eta_int[sel] / cfg.eta_threshold,
        flux=stats.sf_int[sel] / stats.n[sel], limit=np.full(n, np.nan),
        precovery_flux=np.full(n, np.nan), precovery_flux_err=np.full(n, np.nan),
        rise_sigma=np.full(n, np.nan), n_precovery=np.zeros(n, dtype=np.int64),
        n_bands=np.ones(n, dtype=np.int64), reason=np.full(n, "", dtype=object),
    )
