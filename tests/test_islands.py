"""Island labelling: the sparse connected-components search against scipy's labelling."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from trapline.extract.islands import EIGHT_CONNECTED, label_pixels


@settings(max_examples=60, deadline=None)
@given(ny=st.integers(1, 40), nx=st.integers(1, 40), fill=st.floats(0.0, 0.7),
       seed=st.integers(0, 2**32 - 1))
def test_labels_equal_scipy_ndimage(ny, nx, fill, seed):
    """Same pixels, same components, same numbering, for any shape and density
    (including islands that touch the left and right edges on adjacent rows)."""
    mask = np.random.default_rng(seed).random((ny, nx)) < fill
    expected, n_expected = ndimage.label(mask, structure=EIGHT_CONNECTED)
    flat, labels, n = label_pixels(mask)
    assert n == n_expected
    np.testing.assert_array_equal(flat, np.flatnonzero(expected))
    np.testing.assert_array_equal(labels, expected.ravel()[flat])


def test_row_ends_do_not_connect():
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 3] = mask[1, 0] = True  # adjacent in memory, not on the sky
    _, labels, n = label_pixels(mask)
    assert n == 2 and labels.tolist() == [1, 2]
