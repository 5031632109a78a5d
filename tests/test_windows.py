"""Sorted windows: sums kept up to date as windows move equal sums taken afresh."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trapline.extract.windows import SortedWindows


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 12), width=st.integers(1, 70), nan_fraction=st.floats(0, 0.5),
       moves=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_moved_windows_keep_exact_sums_and_counts(n_rows, width, nan_fraction, moves, seed):
    """Any number of moves of any rows, windows growing, shrinking, jumping or empty;
    rows with NaN tails. Sums, means, deviations, medians and binary-search counts
    equal a direct float64 computation on the window's values."""
    rng = np.random.default_rng(seed)
    # Centred, as the cell statistics give them (relative to each cell's median): the
    # variance from sums of squares needs that.
    values = rng.standard_normal((n_rows, width)).astype(np.float32)
    values[rng.random((n_rows, width)) < nan_fraction] = np.nan
    values.sort(axis=1)
    windows = SortedWindows(values)
    n_valid = np.isfinite(values).sum(axis=1)
    for _ in range(moves):
        rows = np.flatnonzero(rng.random(n_rows) < 0.7)
        if not len(rows):
            continue
        a = rng.integers(0, n_valid[rows] + 1)
        b = rng.integers(0, n_valid[rows] + 1)
        windows.move(rows, np.minimum(a, b), np.maximum(a, b))
    everything = np.arange(n_rows)
    mean, std, median = windows.stats(everything)
    for r in everything:
        window = values[r, windows.lo[r]:windows.hi[r]]
        exact = window.astype(np.float64)
        squares = np.square(window).astype(np.float64)  # squared in float32, as stored
        assert abs(windows.total[r] - exact.sum()) < 1e-9 * (1 + np.abs(exact).sum())
        assert abs(windows.total2[r] - squares.sum()) < 1e-9 * (1 + squares.sum())
        if len(window) >= 2:
            assert abs(mean[r] - exact.mean()) < 1e-9 * (1 + abs(exact.mean()))
            assert abs(std[r] - exact.std(ddof=1)) < 1e-5 * (1 + exact.std())
            assert median[r] == np.median(exact)
    cut = rng.normal(0.0, 1.0, n_rows)
    expected = [int((values[r, :n_valid[r]] < cut[r]).sum()) for r in everything]
    assert windows.count_below(everything, cut).tolist() == expected
