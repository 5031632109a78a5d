"""Elliptical Gaussian least-squares fits of all islands at once.

Levenberg-Marquardt over every island simultaneously: each island's pixels contribute
rows to its own 6x6 (or 3x3 with the shape fixed to the beam) normal equations, which
are accumulated with segmented sums and solved as one batch. Parameters are the peak,
the centre, log sigmas and the angle; the moments give the starting point.
"""

from __future__ import annotations

import numpy as np

from trapline.extract.config import ExtractionConfig
from trapline.extract.islands import Islands
from trapline.extract.moments import PixelShapes, measure_moments
from trapline.image import PixelBeam

MAX_ITERATIONS = 30
REFINE_STEPS = 2

# Island sizes (pixels) padded together for the exact sandwich covariance; larger
# islands get Condon's approximate errors (the cost grows with the square of the size).
_BUCKETS = (8, 16, 32, 64, 128, 256, 600)


def _model_and_jacobian(p: np.ndarray, x: np.ndarray, y: np.ndarray, free_shape: bool):
    amp, x0, y0, lmaj, lmin, theta = (p[:, k] for k in range(6))
    smaj2, smin2 = np.exp(2 * lmaj), np.exp(2 * lmin)
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = x - x0, y - y0
    u = dx * c + dy * s
    w = -dx * s + dy * c
    e = np.exp(-0.5 * (u * u / smaj2 + w * w / smin2))
    m = amp * e
    cols = [
        e,
        m * (u * c / smaj2 - w * s / smin2),
        m * (u * s / smaj2 + w * c / smin2),
    ]
    if free_shape:
        cols += [m * u * u / smaj2, m * w * w / smin2, -m * u * w * (1 / smaj2 - 1 / smin2)]
    return m, np.stack(cols, axis=1)


def fit_islands(islands: Islands, beam: PixelBeam, config: ExtractionConfig) -> PixelShapes:
    """Fit one elliptical Gaussian per island; shapes fixed to the beam with ``force_beam``."""
    start = measure_moments(islands, beam, config.analysis_sigma)
    if config.force_beam:
        n = len(islands)
        start.sig_maj = np.full(n, beam.sigma_maj)
        start.sig_min = np.full(n, beam.sigma_min)
        start.theta = np.full(n, beam.theta)
    return least_squares(islands, start, beam, free_shape=not config.force_beam)


def refine_moments(islands: Islands, beam: PixelBeam, analysis_sigma: float) -> PixelShapes:
    """Moments, then two Gauss-Newton steps of the Gaussian least-squares problem.

    Flux-weighted centroids of pixels inside a threshold contour are pulled towards the
    pixel grid ("pixel locking") and clipped second moments are noisy; starting from the
    moments, two steps reach the least-squares solution closely enough that positions,
    peaks and their errors are those of a fit, at a fraction of its cost.
    """
    start = measure_moments(islands, beam, analysis_sigma)
    return least_squares(islands, start, beam, free_shape=True, max_iterations=REFINE_STEPS)


def least_squares(
    islands: Islands,
    start: PixelShapes,
    beam: PixelBeam,
    free_shape: bool,
    max_iterations: int = MAX_ITERATIONS,
) -> PixelShapes:
    """Levenberg-Marquardt from ``start``: peak and centre, plus the shape if ``free_shape``."""
    n = len(islands)
    if n == 0:
        return start
    beam_cov = beam.covariance
    free = free_shape
    idx = islands.island_index
    params = np.stack(
        [
            start.peak,
            start.x,
            start.y,
            np.log(start.sig_maj),
            np.log(start.sig_min),
            start.theta,
        ],
        axis=1,
    )
    params = np.where(np.isfinite(params), params, 0.0)
    k = 6 if free else 3
    lam = np.full(n, 1e-3)
    z = islands.value

    def chi2_of(p):
        model, _ = _model_and_jacobian(p[idx], islands.x, islands.y, free)
        return np.add.reduceat((z - model) ** 2, islands.starts)

    active = np.ones(n, dtype=bool)
    for _ in range(max_iterations):
        model, jac = _model_and_jacobian(params[idx], islands.x, islands.y, free)
        r = z - model
        # chi2 at the current parameters (what chi2_of would give, for free)
        chi2 = np.add.reduceat(r**2, islands.starts)
        jtj = _segment_gram(jac, islands.starts)
        jtr = np.add.reduceat(jac * r[:, None], islands.starts, axis=0)
        diag = np.einsum("nii->ni", jtj)
        damped = jtj + (lam[:, None] * np.maximum(diag, 1e-30))[:, :, None] * np.eye(k)
        # Islands with fewer pixels than parameters are under-determined: keep the start.
        solvable = active & (islands.counts > k)
        step = np.zeros((n, k))
        try:
            step[solvable] = np.linalg.solve(damped[solvable], jtr[solvable][..., None])[..., 0]
        except np.linalg.LinAlgError:
            for i in np.flatnonzero(solvable):
                try:
                    step[i] = np.linalg.solve(damped[i], jtr[i])
                except np.linalg.LinAlgError:
                    active[i] = False
        trial = params.copy()
        trial[:, :k] += step
        trial[:, 3:5] = np.clip(trial[:, 3:5], -3.0, 8.0)
        new_chi2 = chi2_of(trial)
        better = solvable & (new_chi2 < chi2) & np.isfinite(new_chi2)
        converged = better & (chi2 - new_chi2 <= 1e-10 * chi2)
        params[better] = trial[better]
        lam = np.where(better, lam / 10.0, lam * 10.0)
        active &= ~converged & (lam < 1e10)
        if not active.any():
            break
    sig_a, sig_b = np.exp(params[:, 3]), np.exp(params[:, 4])
    swap = sig_b > sig_a
    sig_maj = np.where(swap, sig_b, sig_a)
    sig_min = np.where(swap, sig_a, sig_b)
    theta = np.where(swap, params[:, 5] + np.pi / 2, params[:, 5])
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2
    # A fit that wandered off its island is not a measurement of it; nor is one ten
    # times wider than its island and the beam: a long sidelobe spoke's fit can run to
    # the bound of its log sigma (e^8, 3000 pixels) with a peak and flux to match, while
    # faint extended sources on real images (Parkes) fit up to about 8 times theirs.
    inside = (np.abs(params[:, 1] - start.x) < 2 * sig_maj + 1) & (
        np.abs(params[:, 2] - start.y) < 2 * sig_maj + 1
    )
    extent = _island_extent(islands)
    sane = sig_maj <= 10.0 * np.maximum(extent, 3.0 * beam.sigma_maj)
    ok = start.ok & inside & sane & (params[:, 0] > 0) & np.isfinite(params).all(axis=1)
    _, jac = _model_and_jacobian(params[idx], islands.x, islands.y, free)
    cov = sandwich_covariance(islands, jac, start.rms, beam_cov)
    return PixelShapes(
        x=params[:, 1],
        y=params[:, 2],
        peak=params[:, 0],
        sig_maj=sig_maj,
        sig_min=sig_min,
        theta=theta,
        rms=start.rms,
        peak_pixel_snr=start.peak_pixel_snr,
        ok=ok,
        cov=cov,
    )


def _island_extent(islands: Islands) -> np.ndarray:
    """The diagonal of each island's pixel bounding box (pixels)."""
    if not len(islands):
        return np.zeros(0)
    st = islands.starts
    width = np.maximum.reduceat(islands.x, st) - np.minimum.reduceat(islands.x, st) + 1
    height = np.maximum.reduceat(islands.y, st) - np.minimum.reduceat(islands.y, st) + 1
    return np.hypot(width, height).astype(float)


def sandwich_covariance(
    islands: Islands, jac: np.ndarray, rms: np.ndarray, beam_cov: np.ndarray
) -> np.ndarray:
    """Covariance of least-squares parameters when the noise is correlated over the beam.

    For unweighted least squares with Jacobian J and noise covariance s^2 R the
    parameter covariance is s^2 (J^T J)^-1 J^T R J (J^T J)^-1. R between two pixels of an
    island is exp(-d^T C^-1 d / 4) for beam covariance C (beam-convolved white noise),
    so J^T R J sums over all pixel pairs of each island. Islands above
    the largest bucket get NaN (the caller falls back to Condon's formulas).
    """
    n, k = len(islands), jac.shape[1]
    cov = np.full((n, k, k), np.nan)
    if n == 0:
        return cov
    counts, starts = islands.counts, islands.starts
    inv = np.linalg.inv(beam_cov)
    meat = np.zeros((n, k, k))
    bread = np.zeros((n, k, k))
    # Islands are padded to a few bucket sizes so each bucket is one batched matrix
    # product R @ J (B, m, m) @ (B, m, k) instead of a loop over islands.
    lower = 0
    for size in _BUCKETS:
        members = np.flatnonzero((counts > lower) & (counts <= size))
        lower = size
        if len(members) == 0:
            continue
        m = int(counts[members].max())
        slot = np.arange(m)
        valid = slot[None, :] < counts[members, None]
        pix = np.where(valid, starts[members, None] + slot[None, :], 0)
        jb = np.where(valid[..., None], jac[pix], 0.0)
        rj = np.matmul(_pair_correlation(islands, pix, valid, inv), jb)
        jt = np.transpose(jb, (0, 2, 1))
        meat[members] = jt @ rj
        bread[members] = jt @ jb
    small = counts <= _BUCKETS[-1]
    meat, bread = meat[small], bread[small]
    try:
        bread_inv = np.linalg.inv(bread)
    except np.linalg.LinAlgError:
        bread_inv = np.linalg.pinv(bread)
    cov[small] = (rms[small] ** 2)[:, None, None] * bread_inv @ meat @ bread_inv
    return cov


def _segment_gram(jac: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """J^T J of each island's rows of ``jac`` (pixels, k): the k(k+1)/2 distinct
    products only, mirrored (the same values as the full outer products)."""
    k = jac.shape[1]
    upper_i, upper_j = np.triu_indices(k)
    upper = np.add.reduceat(jac[:, upper_i] * jac[:, upper_j], starts, axis=0)
    gram = np.empty((len(starts), k, k))
    gram[:, upper_i, upper_j] = upper
    gram[:, upper_j, upper_i] = upper
    return gram


def _pair_correlation(islands: Islands, pix: np.ndarray, valid: np.ndarray,
                      inv_beam: np.ndarray) -> np.ndarray:
    """Noise correlation between every pair of pixels of each (padded) island, shape
    (islands, m, m). Island pixels lie on the pixel grid, so a pair's correlation
    depends only on its integer offset: it is looked up in a table of the offsets up
    to the largest island extent rather than evaluated for every pair."""
    x = islands.x[pix].astype(np.int32)  # int32 halves the traffic of the pair arrays
    y = islands.y[pix].astype(np.int32)
    x, y = np.where(valid, x, x[:, :1]), np.where(valid, y, y[:, :1])  # padding: any pixel
    extent = int(max((x.max(axis=1) - x.min(axis=1)).max(), (y.max(axis=1) - y.min(axis=1)).max()))
    width = 2 * extent + 1
    d = np.arange(-extent, extent + 1, dtype=np.float64)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    table = np.exp(-0.25 * (inv_beam[0, 0] * dx * dx + 2 * inv_beam[0, 1] * dx * dy
                            + inv_beam[1, 1] * dy * dy)).ravel()
    # key differences are dy * width + dx, unique for |dx|, |dy| <= extent
    key = y * np.int32(width) + x
    offset = key[:, :, None] - key[:, None, :]
    offset += np.int32(extent * width + extent)
    return table[offset]
