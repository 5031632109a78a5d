"""Background and rms maps from kappa-sigma clipped statistics on a grid of cells.

Following PySE (Spreeuw 2010; Carbone et al. 2018): the image is cut into cells, each
cell's pixels are clipped iteratively at kappa times their standard deviation around
the median, the clipped rms is corrected for the truncation of a Gaussian, and the
background is the mode estimate ``2.5 median - 1.5 mean`` unless the distribution is
too skewed, where the median is used. The cell values are then interpolated to every
pixel by separable linear interpolation between cell centres (as PySE's default
``interpolate_order=1``), held constant beyond the outermost centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from trapline.extract.windows import SortedWindows


@dataclass
class BackgroundMaps:
    """Per-pixel background (Jy/beam) and rms (Jy/beam); NaN where no valid statistics
    exist. ``grid_*`` are the cell values (NaN: too few valid pixels), ``cell`` the cell
    size (pixels)."""

    background: np.ndarray
    rms: np.ndarray | GridMap
    grid_background: np.ndarray
    grid_rms: np.ndarray
    cell: int = 0

    def rms_on_demand(self, blank: np.ndarray) -> GridMap:
        """The rms map as a :class:`GridMap` (NaN where ``blank`` is NaN): the same
        values, computed only where looked up, at a few hundred bytes instead of an
        image's worth (what crosses process boundaries)."""
        return GridMap(_fill_missing(self.grid_rms), blank.shape, self.cell, blank)


class GridMap:
    """A map interpolated from cell values exactly as :func:`background_maps` does,
    evaluated only at the pixels indexed: ``grid_map[iy, ix]`` with integer arrays.
    Pixels where ``blank`` is NaN are NaN."""

    ndim = 2

    def __init__(self, cells: np.ndarray, shape: tuple[int, int], cell: int,
                 blank: np.ndarray | None = None):
        self.cells = cells.astype(np.float32)
        self.shape = tuple(shape)
        self.cell = cell
        # Kept only if it has NaNs: most images have none, and skipping the lookup
        # into a full image saves most of the cost of an evaluation.
        self.blank = blank if blank is not None and np.isnan(blank).any() else None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_weights", None)
        return state

    def _axis_weights(self):
        weights = getattr(self, "_weights", None)
        if weights is None:
            ylo, yhi, ty = _interpolation_weights(self.shape[0], self.cells.shape[0], self.cell)
            xlo, xhi, tx = _interpolation_weights(self.shape[1], self.cells.shape[1], self.cell)
            weights = self._weights = (ylo, yhi, ty, xlo, xhi, tx, 1 - tx)
        return weights

    def __getitem__(self, index: tuple) -> np.ndarray:
        iy, ix = (np.asarray(i) for i in index)
        ylo, yhi, ty, xlo, xhi, tx, ux = self._axis_weights()
        ylo, yhi, ty, xlo, xhi, tx, ux = ylo[iy], yhi[iy], ty[iy], xlo[ix], xhi[ix], tx[ix], ux[ix]
        g = self.cells
        # The operations of _interpolate, in its order, so the values are identical.
        low = g[ylo, xlo] * ux + g[ylo, xhi] * tx
        high = g[yhi, xlo] * ux + g[yhi, xhi] * tx
        step = high - low
        step[yhi == ylo] = 0  # one row of cells: nothing to step to
        out = step * ty
        out += low
        if self.blank is not None:
            out[np.isnan(self.blank[iy, ix])] = np.nan
        return out


# Values (and cell rms) below this fraction of the noisier cells' rms are blanking.
NEGLIGIBLE_RMS = 1e-4


def _truncation_factor(kappa: float) -> float:
    """Std of a unit Gaussian truncated at +-kappa."""
    phi = math.exp(-0.5 * kappa * kappa) / math.sqrt(2 * math.pi)
    cdf = 0.5 * erf(kappa / math.sqrt(2))
    return math.sqrt(max(1.0 - 2.0 * kappa * phi / (2.0 * cdf), 1e-12))


def cell_statistics(
    data: np.ndarray,
    grid: int,
    kappa: float = 2.0,
    iterations: int = 50,
    min_fraction: float = 0.9,
    blank: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Clipped background and rms of each grid cell.

    Each cell is sorted once; a clipping window is then a contiguous slice of the
    sorted values (:class:`~trapline.extract.windows.SortedWindows`: binary searches,
    float64 window sums kept up to date as windows move). Cells whose window stopped
    changing drop out of the iterations.
    ``blank``, the mask of the image's NaN pixels when the caller has it, lets cells
    with too few valid pixels be left out before any work (a fifth of an all-sky
    image lies beyond the horizon).

    Returns:
        (background, rms) arrays of shape (ceil(ny/grid), ceil(nx/grid)), Jy/beam; NaN
        for cells with fewer than ``min_fraction`` valid pixels.
    """
    gy, gx = -(-data.shape[0] // grid), -(-data.shape[1] // grid)
    cells, used = _cells_as_rows(data, grid, min_fraction, blank)
    if not len(cells):
        nan = np.full((gy, gx), np.nan)
        return nan, nan.copy()
    cells.sort(axis=1)  # NaN sorts last
    rows = np.arange(len(cells))
    n_valid = np.isfinite(cells).sum(axis=1)
    # Values relative to each cell's median: sums of squares free of cancellation.
    offset = cells[rows, np.maximum(n_valid - 1, 0) // 2]
    offset = np.where(np.isfinite(offset), offset, 0.0).astype(np.float32)
    cells -= offset[:, None]
    windows = SortedWindows(cells, n_valid)
    truncation = _truncation_factor(kappa)
    mean, sigma, median = windows.stats(rows)  # the first pass has not clipped anything
    # A cell whose window did not change has converged and stays so: iterate on the
    # others only (the result is that of iterating every cell until all converge).
    active = rows
    for _ in range(iterations):
        # Clip at kappa times the de-truncated sigma, so that at convergence the window is
        # exactly +-kappa sigma and the truncation correction is consistent with it.
        # Both window ends in one search: v <= c is v < nextafter(c) for float32 v.
        k = len(active)
        ends = windows.count_below(np.concatenate([active, active]), np.concatenate([
            median[active] - kappa * sigma[active],
            np.nextafter(median[active] + kappa * sigma[active], np.inf)]))
        new_lo, new_hi = ends[:k], ends[k:]
        changed = (new_lo != windows.lo[active]) | (new_hi != windows.hi[active])
        if not changed.any():
            break
        active = active[changed]
        windows.move(active, new_lo[changed], new_hi[changed])
        m, sd, med = windows.stats(active)
        mean[active], median[active], sigma[active] = m, med, sd / truncation
    rms = sigma
    skewed = np.abs(mean - median) / np.maximum(rms, 1e-30) > 0.3
    background = np.where(skewed, median, 2.5 * median - 1.5 * mean) + offset
    bad = (n_valid < min_fraction * grid * grid) | (windows.hi - windows.lo < 3) | ~(rms > 0)
    if not bad.all():
        bad |= _numerical_blanking(windows, offset, rms, bad, min_fraction)
    background[bad] = np.nan
    rms[bad] = np.nan
    if used is not None:
        background, rms = _scatter(background, used, gy * gx), _scatter(rms, used, gy * gx)
    return background.reshape(gy, gx), rms.reshape(gy, gx)


def _numerical_blanking(windows: SortedWindows, offset: np.ndarray, rms: np.ndarray,
                        bad: np.ndarray, min_fraction: float) -> np.ndarray:
    """Cells that are mostly blanking written as numbers (zeros, 1e-8 beyond a field's
    edge), which is no noise: their clipped window closes onto it and their rms
    collapses, giving the real noise beside it S/N in the hundreds. Values within
    NEGLIGIBLE_RMS of the noisier good cells' rms (90th percentile: most of an image
    may be such blanking) from zero count as blank; a cell with fewer than
    ``min_fraction`` other values, or whose rms is that small, is blank like a cell of
    NaNs (its neighbours' values replace it). Noise alone puts ~1e-4 of a cell's
    pixels there."""
    tiny = NEGLIGIBLE_RMS * np.percentile(rms[~bad], 90)
    rows = np.arange(len(offset))
    # Cells hold values relative to ``offset``: count those in [-tiny, tiny] around 0.
    ends = windows.count_below(np.concatenate([rows, rows]), np.concatenate([
        -tiny - offset, np.nextafter(np.float32(tiny) - offset, np.float32(np.inf))]))
    n_blank = ends[len(rows):] - ends[: len(rows)]
    return (windows.n_valid - n_blank < min_fraction * windows.width) | (rms < tiny)


def _cells_as_rows(data: np.ndarray, grid: int, min_fraction: float,
                   blank: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The image's grid cells as the rows of a new float32 array (NaN-padded at the
    edges), and which cells they are: None for all, else the flat indices of those
    with at least ``min_fraction`` valid pixels by the ``blank`` mask."""
    ny, nx = data.shape
    gy, gx = -(-ny // grid), -(-nx // grid)
    padded = data
    if (gy * grid, gx * grid) != (ny, nx) or data.dtype != np.float32:
        padded = np.full((gy * grid, gx * grid), np.nan, dtype=np.float32)
        padded[:ny, :nx] = data
    by_cell = padded.reshape(gy, grid, gx, grid).transpose(0, 2, 1, 3)
    used = None
    if blank is not None and blank.any():
        valid = np.zeros(padded.shape, dtype=bool)
        np.logical_not(blank, out=valid[:ny, :nx])
        counts = valid.reshape(gy, grid, gx, grid).sum(axis=(1, 3), dtype=np.int32).ravel()
        used = np.flatnonzero(counts >= max(min_fraction * grid * grid, 3))
        if len(used) < gy * gx:
            return by_cell[used // gx, used % gx].reshape(len(used), grid * grid), used
    # A copy, except for a single column of cells, where the grouping is a view of the
    # caller's array (which is sorted in place next).
    cells = by_cell.reshape(gy * gx, grid * grid)
    return (cells.copy() if np.may_share_memory(cells, data) else cells), None


def _scatter(values: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[at] = values
    return out


def _fill_missing(grid_values: np.ndarray) -> np.ndarray:
    """Replace NaN cells by the mean of their nearest valid cells (repeated dilation)."""
    out = grid_values.copy()
    if np.isfinite(out).all() or not np.isfinite(out).any():
        return out
    for _ in range(max(out.shape)):
        missing = ~np.isfinite(out)
        if not missing.any():
            break
        padded = np.pad(out, 1, constant_values=np.nan)
        stack = np.stack(
            [padded[1 + dy : 1 + dy + out.shape[0], 1 + dx : 1 + dx + out.shape[1]]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
        )
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                neighbour_mean = np.nanmean(stack, axis=0)
        out[missing] = neighbour_mean[missing]
    return out


def _interpolation_weights(n_pixels: int, n_cells: int, grid: int):
    """For each pixel along one axis: the two cell centres around it and the weight of
    the upper one (linear interpolation, constant beyond the first and last centres)."""
    centres = (np.arange(n_cells) + 0.5) * grid - 0.5
    centres[-1] = min(centres[-1], (n_cells - 1) * grid + (n_pixels - (n_cells - 1) * grid - 1) / 2)
    pos = np.clip(np.arange(n_pixels, dtype=float), centres[0], centres[-1])
    if n_cells == 1:
        zero = np.zeros(n_pixels, dtype=np.int64)
        return zero, zero, np.zeros(n_pixels, dtype=np.float32)
    hi = np.clip(np.searchsorted(centres, pos, side="right"), 1, n_cells - 1)
    lo = hi - 1
    t = (pos - centres[lo]) / (centres[hi] - centres[lo])
    return lo, hi, t.astype(np.float32)


def _interpolate(grid_values: np.ndarray, shape: tuple[int, int], grid: int) -> np.ndarray:
    """Separable linear interpolation of cell values to every pixel (no BLAS, so no
    thread contention in worker processes).

    Along x first, on the small (cells, nx) array; then each image row is its lower
    cell row plus a fraction of the step to the next, written block by block of rows
    that share a cell row: C-ordered (a column gather would give a transposed layout
    that makes every later full-image operation several times slower) and with no
    image-sized temporaries."""
    ylo, _, ty = _interpolation_weights(shape[0], grid_values.shape[0], grid)
    xlo, xhi, tx = _interpolation_weights(shape[1], grid_values.shape[1], grid)
    g = grid_values.astype(np.float32)
    cols = np.ascontiguousarray(g[:, xlo] * (1 - tx)[None, :] + g[:, xhi] * tx[None, :])
    step = np.zeros_like(cols)  # the upper neighbour of row ylo is ylo + 1
    step[:-1] = cols[1:] - cols[:-1]
    out = np.empty(shape, dtype=np.float32)
    bounds = np.flatnonzero(np.r_[True, ylo[1:] != ylo[:-1], True])  # ylo never decreases
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        row = ylo[start]
        block = out[start:stop]
        np.multiply(step[row][None, :], ty[start:stop, None], out=block)
        block += cols[row]
    return out


def background_maps(
    data: np.ndarray,
    grid: int = 32,
    kappa: float = 2.0,
    iterations: int = 50,
    min_fraction: float = 0.9,
    blank: np.ndarray | None = None,
) -> BackgroundMaps:
    """Full-resolution background and rms maps of an image (Jy/beam).

    Pixels that are NaN in ``data`` are NaN in both maps; ``blank``, their mask, if the
    caller has it already.
    """
    if blank is None:
        blank = ~np.isfinite(data)
    grid_bg, grid_rms = cell_statistics(data, grid, kappa, iterations, min_fraction, blank)
    if not np.isfinite(grid_rms).any():
        nan = np.full(data.shape, np.nan, dtype=np.float32)
        return BackgroundMaps(nan, nan.copy(), grid_bg, grid_rms, grid)
    filled_bg, filled_rms = _fill_missing(grid_bg), _fill_missing(grid_rms)
    bg = _interpolate(filled_bg, data.shape, grid)
    rms = _interpolate(filled_rms, data.shape, grid)
    if blank.any():
        bg[blank] = np.nan
        rms[blank] = np.nan
    return BackgroundMaps(bg, rms, grid_bg, grid_rms, grid)
