"""Association scenarios: de Ruiter radius, beamwidth limit, RA wrap, poles, and the
one-to-many / many-to-one / many-to-many cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trapline.geometry import offsets_deg, separation_deg, shift_position
from trapline.pipeline.associate import associate
from trapline.pipeline.skymodel import SkyModel

ERR = 1.0 / 3600  # 1 arcsec position errors
SEMI_MAJOR = 20.0 / 3600  # beam semi-major axis (deg)


def sky_with(ra, dec, err=ERR) -> SkyModel:
    sky = SkyModel()
    ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)
    sky.add(ra, dec, np.full(len(ra), err), np.full(len(ra), err), 0.0)
    return sky


def run(sky, ra, dec, err=ERR, limit=3.0, radius=5.68):
    ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)
    e = np.full(len(ra), err)
    return associate(sky, ra, dec, e, e, SEMI_MAJOR, limit, radius)


def at(ra0, dec0, east_arcsec, north_arcsec):
    ra, dec = shift_position(ra0, dec0, east_arcsec / 3600, north_arcsec / 3600)
    return float(ra), float(dec)


def test_one_to_one():
    sky = sky_with([10.0, 10.1], [20.0, 20.0])
    ra1, dec1 = at(10.0, 20.0, 2, -1)
    ra2, dec2 = at(10.1, 20.0, -1, 2)
    a = run(sky, [ra2, ra1], [dec2, dec1])
    assert a.source_row.tolist() == [1, 0]
    assert (a.parent_row == -1).all() and len(a.shared_rows) == 0
    # de Ruiter radius: offset over the combined error (sqrt(2) arcsec per axis).
    assert a.de_ruiter[1] == pytest.approx(np.hypot(2, 1) / np.sqrt(2), rel=1e-6)


def test_de_ruiter_threshold():
    sky = sky_with(10.0, 20.0)
    inside = at(10.0, 20.0, 5.6 * np.sqrt(2), 0)
    outside = at(10.0, 20.0, 5.8 * np.sqrt(2), 0)
    assert run(sky, inside[0], inside[1]).source_row[0] == 0
    assert run(sky, outside[0], outside[1]).source_row[0] == -1


def test_beamwidth_limit():
    """Large errors make the de Ruiter radius small; the beamwidth limit still cuts."""
    sky = sky_with(10.0, 20.0, err=60 / 3600)
    near = at(10.0, 20.0, 0, 2.9 * 20)
    far = at(10.0, 20.0, 0, 3.1 * 20)
    assert run(sky, near[0], near[1], err=60 / 3600).source_row[0] == 0
    assert run(sky, far[0], far[1], err=60 / 3600).source_row[0] == -1


def test_ra_wrap():
    sky = sky_with(359.9995, 0.0)
    a = run(sky, 0.0003, 0.0)
    assert a.source_row[0] == 0
    assert a.de_ruiter[0] == pytest.approx(0.0008 * 3600 / np.sqrt(2), rel=1e-4)
    # The weighted mean stays on the right side of the wrap.
    sky.update_positions(np.array([0]), np.array([0.0003]), np.array([0.0]),
                         np.array([ERR]), np.array([ERR]))
    assert sky.sources.ra[0] == pytest.approx(359.9999, abs=1e-7)


@pytest.mark.parametrize("pole", [89.9995, -89.9995])
def test_near_the_pole(pole):
    """Across the pole RA differences are huge but the sky separation tiny."""
    sky = sky_with(10.0, pole)
    ra, dec = at(10.0, pole, 1.5, 1.0)
    other_side = at(190.0, pole, 0, 0)  # 3.6" away through the pole
    a = run(sky, [ra, other_side[0]], [dec, other_side[1]])
    assert a.source_row[0] == 0
    assert a.de_ruiter[0] == pytest.approx(np.hypot(1.5, 1.0) / np.sqrt(2), rel=1e-4)
    # The second detection (3.6" away through the pole) is also a candidate of source 0,
    # which took the closer one: it forks source 0's lightcurve.
    assert a.source_row[1] == -1
    assert a.parent_row[1] == 0


def test_one_to_many_forks_the_lightcurve():
    sky = sky_with(10.0, 20.0)
    near, second = at(10.0, 20.0, 1, 0), at(10.0, 20.0, -3, 0)
    a = run(sky, [second[0], near[0]], [second[1], near[1]])
    assert a.source_row.tolist() == [-1, 0]
    assert a.parent_row.tolist() == [0, -1]


def test_many_to_one_shares_the_detection():
    sky = sky_with([10.0, 10.0], [20.0, 20.0 + 4 / 3600])
    ra, dec = at(10.0, 20.0, 0, 1.5)
    a = run(sky, ra, dec)
    assert a.source_row.tolist() == [0]
    assert a.shared_rows.tolist() == [1] and a.shared_detections.tolist() == [0]


def test_many_to_many_resolves_to_closest_pairs():
    sky = sky_with([10.0, 10.0], [20.0, 20.0 + 4 / 3600])
    d1 = at(10.0, 20.0, 0, 0.5)
    d2 = at(10.0, 20.0, 0, 3.5)
    a = run(sky, [d2[0], d1[0]], [d2[1], d1[1]])
    assert a.source_row.tolist() == [1, 0]
    assert (a.parent_row == -1).all() and len(a.shared_rows) == 0


coords = st.tuples(st.floats(0, 359.999), st.floats(-89.9, 89.9))


@settings(max_examples=60, deadline=None)
@given(centre=coords, seed=st.integers(0, 2**31 - 1))
def test_association_symmetries(centre, seed):
    """The outcome is the same whichever order detections come in, and matches a
    brute-force de Ruiter computation; positions anywhere on the sky."""
    rng = np.random.default_rng(seed)
    n_src, n_det = 8, 8
    offs = rng.uniform(-60, 60, size=(n_src, 2))
    src = [at(*centre, *o) for o in offs]
    pick = rng.integers(0, n_src, n_det)
    det = [at(*src[i], *rng.normal(0, 2, 2)) for i in pick]
    sky = sky_with([p[0] for p in src], [p[1] for p in src])
    ra, dec = np.array([p[0] for p in det]), np.array([p[1] for p in det])
    a = run(sky, ra, dec)
    perm = rng.permutation(n_det)
    b = run(sky, ra[perm], dec[perm])
    assert (b.source_row == a.source_row[perm]).all()
    assert np.allclose(b.de_ruiter, a.de_ruiter[perm], equal_nan=True)
    for i in np.flatnonzero(a.source_row >= 0):
        j = a.source_row[i]
        e, n = offsets_deg(sky.sources.ra[j], sky.sources.dec[j], ra[i], dec[i])
        r = np.hypot(e, n) / (np.sqrt(2) * ERR)
        assert r == pytest.approx(a.de_ruiter[i], rel=1e-6)
        assert r < 5.68
        assert separation_deg(sky.sources.ra[j], sky.sources.dec[j], ra[i], dec[i]) < 3 * SEMI_MAJOR
