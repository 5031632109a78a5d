"""Deblending: islands holding several sources split into one island per source.

The multi-threshold method of SExtractor and PySE (Spreeuw 2010, sect. 3.4): between
the analysis threshold and the island's peak, ``levels`` thresholds are spaced
exponentially; at each one the island's pixels above it fall into connected branches.
A branch counts as a separate source when it holds at least ``min_contrast`` of the
island's flux. At the level where most such branches coexist, each becomes a seed,
and every pixel of the island goes to the seed it flows to (a watershed on the
brightness), so the sub-islands partition the island.

Only islands with more than one local maximum are examined, so single sources cost
nothing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from trapline.extract.islands import EIGHT_CONNECTED, Islands


def _local_maxima_per_island(islands: Islands, residual: np.ndarray) -> np.ndarray:
    """Number of pixels per island at least as bright as their eight neighbours."""
    y, x = islands.y.astype(int), islands.x.astype(int)
    ny, nx = residual.shape
    value = residual[y, x]
    is_max = np.ones(len(x), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                yy, xx = np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)
                is_max &= ~(residual[yy, xx] > value)
    return np.add.reduceat(is_max.astype(np.int64), islands.starts)


def _split(stamp: np.ndarray, mask: np.ndarray, floor: float, levels: int,
           min_contrast: float) -> np.ndarray | None:
    """Labels (1..k) of the sub-islands of one island, or None when it is one source."""
    values = np.where(mask, stamp, 0.0)
    total = values.sum()
    peak = values.max()
    if peak <= floor or total <= 0:
        return None
    best_markers, best_count = None, 1
    for level in floor * (peak / floor) ** (np.arange(1, levels + 1) / (levels + 1)):
        labels, n = ndimage.label(values > level, structure=EIGHT_CONNECTED)
        if n < 2:
            continue
        flux = ndimage.sum_labels(values, labels, index=np.arange(1, n + 1))
        big = np.flatnonzero(flux >= min_contrast * total) + 1
        if len(big) > best_count:
            best_count = len(big)
            best_markers = np.where(np.isin(labels, big), labels, 0)
    if best_markers is None:
        return None
    # Watershed from the seeds over the inverted brightness, inside the island only.
    scaled = np.where(mask, (1.0 - values / peak) * 60000, 65535).astype(np.uint16)
    markers = best_markers.astype(np.int32)
    markers[~mask] = -1
    grown = ndimage.watershed_ift(scaled, markers, structure=EIGHT_CONNECTED)
    grown[~mask] = 0
    return grown


def deblend(islands: Islands, residual: np.ndarray, analysis_sigma: float, levels: int = 32,
            min_contrast: float = 0.005) -> tuple[Islands, int]:
    """Split blended islands; returns the new islands and how many islands were split."""
    if len(islands) == 0:
        return islands, 0
    candidates = np.flatnonzero(_local_maxima_per_island(islands, residual) > 1)
    if len(candidates) == 0:
        return islands, 0
    parts: dict[int, list[np.ndarray]] = {}
    n_split = 0
    for k in candidates:
        s, c = islands.starts[k], islands.counts[k]
        x, y = islands.x[s:s + c].astype(int), islands.y[s:s + c].astype(int)
        x0, y0 = x.min(), y.min()
        mask = np.zeros((y.max() - y0 + 1, x.max() - x0 + 1), dtype=bool)
        mask[y - y0, x - x0] = True
        stamp = residual[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
        floor = analysis_sigma * float(islands.rms[s:s + c].min())
        labels = _split(stamp, mask, floor, levels, min_contrast)
        if labels is None:
            continue
        sub = labels[y - y0, x - x0]
        parts[k] = [np.flatnonzero(sub == j) + s for j in np.unique(sub) if j > 0]
        n_split += 1
    if not parts:
        return islands, 0
    order: list[np.ndarray] = []
    for k in range(len(islands)):
        if k in parts:
            order.extend(parts[k])
        else:
            s = islands.starts[k]
            order.append(np.arange(s, s + islands.counts[k]))
    counts = np.array([len(o) for o in order], dtype=np.int64)
    idx = np.concatenate(order)
    return Islands(
        x=islands.x[idx], y=islands.y[idx], value=islands.value[idx], rms=islands.rms[idx],
        starts=np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64), counts=counts,
        n_rejected_large=islands.n_rejected_large,
    ), n_split
