"""Public coordinate helpers return a Python float for scalar input and arrays for arrays.

numpy 2 and astropy hand back 0-d arrays for scalar input, which pytest.approx, JSON
and f-strings treat differently from floats; the helpers must not pass them on.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trapline.geometry import offsets_deg, separation_deg, shift_position
from trapline.image import Beam, Image
from trapline.simulate.config import SimulationConfig
from trapline.storage.healpix import healpix_index

CONFIG = SimulationConfig(size=128, drift=True, allsky=False)
IMAGE = Image(np.zeros((128, 128), np.float32), CONFIG.wcs(), Beam(0.03, 0.02, 0.0), 61000.5,
              150e6)

pixel = st.floats(0.0, 127.0)
ra = st.floats(0.0, 359.999)
dec = st.floats(-89.0, 89.0)
offset = st.floats(-1.0, 1.0)


def exactly_floats(*values) -> bool:
    return all(type(v) is float for v in values)


def arrays_of(n: int, *values) -> bool:
    return all(isinstance(v, np.ndarray) and v.shape == (n,) for v in values)


@settings(max_examples=50, deadline=None)
@given(pixel, pixel)
def test_image_transforms_return_floats_for_scalars(x, y):
    sky = IMAGE.pixel_to_sky(x, y)
    assert exactly_floats(*sky)
    back = IMAGE.sky_to_pixel(*sky)
    assert exactly_floats(*back)
    assert np.allclose(back, (x, y), atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(pixel, pixel), min_size=1, max_size=5))
def test_image_transforms_return_arrays_for_arrays(points):
    x, y = np.array(points).T
    ra_deg, dec_deg = IMAGE.pixel_to_sky(x, y)
    assert arrays_of(len(points), ra_deg, dec_deg)
    assert arrays_of(len(points), *IMAGE.sky_to_pixel(ra_deg, dec_deg))
    # A one-element array stays an array.
    assert arrays_of(1, *IMAGE.pixel_to_sky(x[:1], y[:1]))


@settings(max_examples=50, deadline=None)
@given(ra, dec, ra, dec, offset, offset)
def test_geometry_returns_floats_for_scalars(ra1, dec1, ra2, dec2, east, north):
    assert exactly_floats(separation_deg(ra1, dec1, ra2, dec2))
    assert exactly_floats(*offsets_deg(ra1, dec1, ra2, dec2))
    assert exactly_floats(*shift_position(ra1, dec1, east, north))
    assert type(healpix_index(ra1, dec1)) is int
    n = 3
    arrays = [np.full(n, v) for v in (ra1, dec1, ra2, dec2, east, north)]
    assert arrays_of(n, separation_deg(*arrays[:4]))
    assert arrays_of(n, *offsets_deg(*arrays[:4]), *shift_position(*arrays[:2], *arrays[4:]))
    assert arrays_of(n, healpix_index(*arrays[:2]))


@settings(max_examples=20, deadline=None)
@given(pixel, pixel, st.integers(0, 5))
def test_simulated_drift_returns_floats_for_scalars(x, y, epoch):
    assert exactly_floats(*CONFIG.pixels_at(epoch, x, y))
    assert arrays_of(2, *CONFIG.pixels_at(epoch, np.array([x, x]), np.array([y, y])))
