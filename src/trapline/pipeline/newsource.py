"""New-source candidates: detections without a counterpart in the sky model.

The decision rests on measured flux where it can: a detection whose position was
covered by buffered earlier images of its band (precovery) is new when its peak
exceeds the precovery flux by ``[new_source] rise_sigma`` in combined errors. Where
no earlier image was buffered, TraP's rule applies: the best earlier image covering
the position was deep enough to have seen it by ``margin_sigma`` of its noise
('possible'), or even the worst ('likely').

A detection near a much brighter source of the same image, where that source's
sidelobes (``sidelobe_fraction`` of its peak, out to ``sidelobe_radius_beams``) could
explain its flux, is not claimed new. Detections that the earlier-limit rule would
have flagged but that fail the rise test, and vetoed ones, are kept as kind
'new-rejected' with their reason: visible and countable, but not 'new'.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from trapline.extract.catalogue import Catalogue
from trapline.geometry import unit_vectors
from trapline.pipeline.config import NewSourceSection
from trapline.pipeline.depth import DepthMap
from trapline.pipeline.precovery import Precovery
from trapline.records import Candidates

NEW, REJECTED = "new", "new-rejected"


def sidelobe_vetoes(cat: Catalogue, detections: np.ndarray, beam_deg: float,
                    fraction: float, radius_beams: float) -> np.ndarray:
    """Per detection of ``detections``: '' or the reason it may be a sidelobe of a
    brighter detection of the same image (within ``radius_beams`` beams, whose peak
    times ``fraction`` reaches the detection's peak)."""
    reasons = np.full(len(detections), "", dtype=object)
    if fraction <= 0 or len(detections) == 0 or len(cat) < 2:
        return reasons
    xyz = unit_vectors(cat.ra_deg, cat.dec_deg)
    chord = 2.0 * np.sin(np.radians(radius_beams * beam_deg) / 2.0)
    tree = cKDTree(xyz)
    for k, i in enumerate(detections):
        near = np.asarray(tree.query_ball_point(xyz[i], chord), dtype=np.int64)
        near = near[near != i]
        if not len(near):
            continue
        j = near[np.argmax(cat.peak_jy[near])]
        if fraction * cat.peak_jy[j] >= cat.peak_jy[i]:
            beams = np.degrees(2 * np.arcsin(np.linalg.norm(xyz[i] - xyz[j]) / 2)) / beam_deg
            reasons[k] = (f"sidelobe: {fraction:g} of a {cat.peak_jy[j]:.3g} Jy/beam source "
                          f"{beams:.1f} beams away")
    return reasons


def new_source_candidates(depth: DepthMap, band: int, cat: Catalogue, detections: np.ndarray,
                          precovery: Precovery, vetoes: np.ndarray, detection_sigma: float,
                          cfg: NewSourceSection) -> Candidates:
    """Candidates among ``detections`` (indices into ``cat``, with their ``precovery``
    and ``vetoes`` in the same order). ``source_id`` holds detection indices; the
    caller maps them to source ids once the sources exist."""
    idx = np.asarray(detections, dtype=np.int64)
    if len(idx) == 0:
        return Candidates.empty()
    best, worst = depth.limits_at(band, cat.ra_deg[idx], cat.dec_deg[idx])
    peak, peak_err = cat.peak_jy[idx], cat.peak_err_jy[idx]
    best_rms, worst_rms = best / detection_sigma, worst / detection_sigma
    with np.errstate(invalid="ignore", divide="ignore"):
        possible = np.isfinite(best) & (peak > best + cfg.margin_sigma * best_rms)
        likely = possible & (peak > worst + cfg.margin_sigma * worst_rms)
        rise = (peak - precovery.flux) / np.hypot(peak_err, precovery.flux_err)
    covered = precovery.n_images > 0
    rises = covered & (rise >= cfg.rise_sigma)
    claimed = np.where(covered, rises, possible)
    vetoed = vetoes != ""
    new = claimed & ~vetoed
    rejected = (claimed & vetoed) | (covered & ~rises & possible)
    keep = new | rejected
    reason = np.where(vetoed, vetoes, np.where(
        covered & ~rises,
        [f"no rise: {r:.1f} sigma over the precovery flux (needs {cfg.rise_sigma:g})"
         for r in np.nan_to_num(rise)], ""))
    with np.errstate(invalid="ignore", divide="ignore"):
        significance = np.where(covered, rise, peak / best_rms)
    n = int(keep.sum())
    return Candidates(
        source_id=idx[keep], kind=np.where(new, NEW, REJECTED)[keep].astype(object),
        level=np.where(likely, "likely", np.where(possible, "possible", "none"))[keep]
        .astype(object),
        band=np.full(n, band, dtype=np.int64), significance=significance[keep],
        flux=peak[keep], limit=best[keep], precovery_flux=precovery.flux[keep],
        precovery_flux_err=precovery.flux_err[keep], rise_sigma=np.where(covered, rise,
                                                                           np.nan)[keep],
        n_precovery=precovery.n_images[keep], n_bands=np.ones(n, dtype=np.int64),
        reason=reason[keep].astype(object),
    )
