"""The boundary rule for errors and weights: what comes out of a measurement is made
safe for the sky model before any weighted sum sees it.

A detection whose position error is infinite, NaN or not positive would give the
source an infinite or NaN weight and poison its position (and with it the spatial
index, and every later image). As TraP does, such an error becomes a large finite
one: the detection still associates, but carries no weight in the position. A flux
point whose error is not finite and positive carries no weight and is left out of the
variability sums altogether.
"""

from __future__ import annotations

import numpy as np

# A position error this large (deg) gives a detection no say in a weighted position.
LARGE_POSITION_ERR_DEG = 1.0


def position_errors(err_deg: np.ndarray) -> np.ndarray:
    """Position errors (deg) with non-finite or non-positive values replaced by
    :data:`LARGE_POSITION_ERR_DEG`."""
    err = np.asarray(err_deg, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(err) & (err > 0)
    return np.where(ok, err, LARGE_POSITION_ERR_DEG)


def usable_points(value: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Mask of the points with a finite value and a finite, positive error."""
    value, err = np.asarray(value, dtype=float), np.asarray(err, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(value) & np.isfinite(err) & (err > 0)
