"""Islands: 8-connected groups of pixels above the analysis threshold that contain at
least one pixel above the detection threshold (PySE's two-threshold scheme).

Islands are returned as flat "segments": the pixels of all islands concatenated and
sorted by island, with start offsets, so that every per-island statistic is a single
vectorised ``np.add.reduceat``-style pass instead of a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from trapline.extract.morphology import touches

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass
class Islands:
    """Pixels of the detected islands, grouped by island.

    Attributes:
        x, y: 0-based pixel column and row of every island pixel.
        value: background-subtracted brightness (Jy/beam).
        rms: local rms (Jy/beam).
        starts: index of each island's first pixel in the arrays above.
        counts: pixels per island.
        n_rejected_large: islands skipped for exceeding the size limit.
    """

    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    rms: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    n_rejected_large: int = 0

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def island_index(self) -> np.ndarray:
        """Island number of every pixel."""
        return np.repeat(np.arange(len(self.starts)), self.counts)


def find_islands(
    residual: np.ndarray,
    rms: np.ndarray,
    detection_sigma: float,
    analysis_sigma: float,
    margin: int = 0,
    max_pixels: int = 100_000,
    remove_edge: bool = True,
    blanked: np.ndarray | None = None,
) -> Islands:
    """Label islands in a background-subtracted image.

    Args:
        residual: image minus background (Jy/beam); NaN where blanked.
        rms: local rms map (Jy/beam).
        detection_sigma: an island needs a pixel above this many rms.
        analysis_sigma: island pixels are above this many rms.
        margin: islands whose brightest pixel lies closer than this to the edge are dropped.
        max_pixels: islands with more pixels are dropped and counted.
        remove_edge: drop islands touching the image border, whose measurement would be
            truncated (as PySE does).
        blanked: mask of blanked regions; islands touching one are dropped like those at
            the border (their measurement is truncated too).
    """
    with np.errstate(invalid="ignore"):
        mask = residual > analysis_sigma * rms
    flat, lab, n = label_pixels(mask)
    if n == 0:
        return _empty()
    order = np.argsort(lab, kind="stable")
    flat, lab = flat[order], lab[order]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    value = residual.ravel()[flat]
    noise = rms.ravel()[flat]
    snr = value / noise
    peak_snr = np.maximum.reduceat(snr, starts)
    keep = (peak_snr >= detection_sigma) & (counts <= max_pixels)
    n_large = int(((peak_snr >= detection_sigma) & (counts > max_pixels)).sum())
    ny, nx = residual.shape
    if remove_edge:
        py, px = np.divmod(flat, nx)
        border = (px == 0) | (py == 0) | (px == nx - 1) | (py == ny - 1)
        if blanked is not None:
            border |= touches(blanked, py, px)
        keep &= ~np.logical_or.reduceat(border, starts)
    if margin > 0:
        is_peak = snr == np.repeat(peak_snr, counts)
        first_peak = np.full(n, -1)
        idx = np.flatnonzero(is_peak)
        first_peak[lab[idx][::-1] - 1] = flat[idx][::-1]
        py, px = np.divmod(first_peak, nx)
        keep &= (px >= margin) & (py >= margin) & (px < nx - margin) & (py < ny - margin)
    if not keep.any():
        empty = _empty()
        empty.n_rejected_large = n_large
        return empty
    pixel_keep = np.repeat(keep, counts)
    flat = flat[pixel_keep]
    counts = counts[keep]
    y, x = np.divmod(flat, residual.shape[1])
    return Islands(
        x=x.astype(np.float64),
        y=y.astype(np.float64),
        value=value[pixel_keep].astype(np.float64),
        rms=noise[pixel_keep].astype(np.float64),
        starts=np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64),
        counts=counts.astype(np.int64),
        n_rejected_large=n_large,
    )


def label_pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """8-connected components of a sparse mask: (flat indices of its pixels in raster
    order, their labels 1..n, n), numbered as ``scipy.ndimage.label`` numbers them.

    The graph of neighbouring mask pixels goes to a sparse connected-components
    search, so the cost follows the ~1% of pixels above the analysis threshold rather
    than the whole image."""
    nx = mask.shape[1]
    flat = np.flatnonzero(mask)
    if len(flat) == 0:
        return flat, np.zeros(0, dtype=np.int64), 0
    on = mask.ravel()
    x = flat % nx
    pairs = []
    # Each pair once: right, and the three neighbours on the next row.
    for offset, dx in ((1, 1), (nx - 1, -1), (nx, 0), (nx + 1, 1)):
        other = flat + offset
        ok = (other < on.size) & (x + dx >= 0) & (x + dx < nx)
        ok[ok] = on[other[ok]]
        pairs.append((flat[ok], other[ok]))
    a = np.searchsorted(flat, np.concatenate([p[0] for p in pairs]))
    b = np.searchsorted(flat, np.concatenate([p[1] for p in pairs]))
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(flat), len(flat)))
    n, labels = connected_components(graph, directed=False)
    return flat, labels.astype(np.int64) + 1, int(n)


def _empty() -> Islands:
    z = np.zeros(0)
    zi = np.zeros(0, dtype=np.int64)
    return Islands(z, z, z, z, zi, zi)
