"""3x3 binary morphology in numpy against scipy.ndimage's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from trapline.extract.morphology import binary_opening3, touches

SQUARE = np.ones((3, 3), dtype=bool)
masks = st.builds(
    lambda ny, nx, fill, seed: np.random.default_rng(seed).random((ny, nx)) < fill,
    st.integers(1, 30), st.integers(1, 30), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))


@settings(max_examples=80, deadline=None)
@given(mask=masks)
def test_opening_equals_ndimage(mask):
    """Any shape (rows or columns of one or two pixels too) and density, edges included."""
    np.testing.assert_array_equal(binary_opening3(mask),
                                  ndimage.binary_opening(mask, structure=SQUARE))


@settings(max_examples=80, deadline=None)
@given(mask=masks, seed=st.integers(0, 2**32 - 1))
def test_touches_equals_dilation_at_the_pixels_asked(mask, seed):
    ny, nx = mask.shape
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, ny, 50), rng.integers(0, nx, 50)
    dilated = ndimage.binary_dilation(mask, structure=SQUARE)
    np.testing.assert_array_equal(touches(mask, y, x), dilated[y, x])


def test_opening_keeps_a_horizon_and_drops_flagged_pixels():
    """An all-sky image's blanked corners stay; isolated flagged pixels go."""
    yy, xx = np.mgrid[0:64, 0:64]
    mask = np.hypot(yy - 31.5, xx - 31.5) > 30
    flagged = mask.copy()
    flagged[10, 20] = flagged[40, 41] = True
    opened = binary_opening3(flagged)
    assert opened[0, 0] and opened[63, 63] and not opened[10, 20] and not opened[40, 41]
    np.testing.assert_array_equal(opened, ndimage.binary_opening(flagged, structure=SQUARE))
