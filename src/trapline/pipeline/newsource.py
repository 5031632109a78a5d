"""New-source candidates: detections without a counterpart that earlier images were
deep enough to have seen (TraP's 'possible' and 'likely' transients)."""

from __future__ import annotations

import numpy as np

from trapline.extract.catalogue import Catalogue
from trapline.pipeline.depth import DepthMap
from trapline.records import Candidates


def new_source_candidates(depth: DepthMap, band: int, cat: Catalogue, detections: np.ndarray,
                          detection_sigma: float, margin_sigma: float) -> Candidates:
    """Candidates among ``detections`` (indices into ``cat``): those the best earlier
    image covering the position was deep enough to have seen by ``margin_sigma`` of its
    noise ('possible'), or even the worst ('likely'). ``source_id`` holds detection
    indices; the caller maps them to source ids once the sources exist. Significance:
    the peak over the best earlier image's rms at that position."""
    idx = np.asarray(detections, dtype=np.int64)
    if len(idx) == 0:
        return Candidates.empty()
    best, worst = depth.limits_at(band, cat.ra_deg[idx], cat.dec_deg[idx])
    peak = cat.peak_jy[idx]
    best_rms, worst_rms = best / detection_sigma, worst / detection_sigma
    with np.errstate(invalid="ignore"):
        possible = peak > best + margin_sigma * best_rms
        likely = peak > worst + margin_sigma * worst_rms
    keep = np.isfinite(best) & possible
    n = int(keep.sum())
    return Candidates(
        source_id=idx[keep], kind=np.full(n, "new", dtype=object),
        level=np.where(likely[keep], "likely", "possible").astype(object),
        band=np.full(n, band, dtype=np.int64), significance=(peak / best_rms)[keep],
        flux=peak[keep], limit=best[keep],
    )
