"""Scalars in, scalars out: the return convention of the public coordinate helpers.

numpy and astropy hand back 0-d arrays (or numpy scalars) for scalar input; callers
that compare, format or serialise the result expect a plain float, so public
functions that take scalars or arrays return a Python float for scalar input and an
array for array input.
"""

from __future__ import annotations

import numpy as np

FloatOrArray = float | np.ndarray


def scalar_or_array(value) -> FloatOrArray:
    """``value`` as a Python float if it is a scalar or 0-d, else as a float array."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array
