"""Images cross process boundaries with their WCS as header text (trapline.wcstext)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from astropy.wcs import WCS

from trapline.image import Beam, Image


def make_wcs(kind: str, freq_hz: float = 150e6) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [359.9, 52.0]  # RA wraps inside the image
    wcs.wcs.crpix = [64.5, 64.5]
    wcs.wcs.dateobs = "2026-11-28T12:00:00"
    wcs.wcs.restfrq = freq_hz
    if kind == "cd":
        wcs.wcs.cd = [[-0.01, 0.004], [0.003, 0.012]]
    else:
        wcs.wcs.cdelt = [-0.01, 0.01]
        if kind == "pc":
            angle = np.radians(30.0)
            wcs.wcs.pc = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    wcs.wcs.set()
    return wcs


def image(wcs: WCS, time_mjd: float = 61000.5) -> Image:
    data = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    return Image(data, wcs, Beam(0.03, 0.02, 10.0), time_mjd, 150e6)


@pytest.mark.parametrize("kind", ["cdelt", "pc", "cd"])
def test_pickled_image_maps_pixels_to_the_same_sky(kind):
    original = image(make_wcs(kind))
    copy = pickle.loads(pickle.dumps(original))
    x, y = np.meshgrid(np.linspace(-5, 133, 40), np.linspace(-5, 133, 40))
    ra0, dec0 = original.pixel_to_sky(x.ravel(), y.ravel())
    ra1, dec1 = copy.pixel_to_sky(x.ravel(), y.ravel())
    # Header text keeps the matrix to ~1e-15, as astropy's own WCS pickle does.
    np.testing.assert_allclose(ra1, ra0, rtol=0, atol=1e-11)
    np.testing.assert_allclose(dec1, dec0, rtol=0, atol=1e-11)
    np.testing.assert_array_equal(copy.data, original.data)
    assert (copy.time_mjd, copy.beam, copy.freq_hz) == (original.time_mjd, original.beam,
                                                       original.freq_hz)
    px, py = copy.sky_to_pixel(ra0, dec0)
    np.testing.assert_allclose(px, x.ravel(), atol=1e-8)
    np.testing.assert_allclose(py, y.ravel(), atol=1e-8)


def test_images_of_one_pointing_share_one_parsed_wcs():
    """Different times and bands, same pointing: one parse per process."""
    first = pickle.loads(pickle.dumps(image(make_wcs("pc", 140e6), 61000.5)))
    second = pickle.loads(pickle.dumps(image(make_wcs("pc", 160e6), 61000.6)))
    other = pickle.loads(pickle.dumps(image(make_wcs("cd"))))
    assert first.wcs is second.wcs
    assert other.wcs is not first.wcs
    assert (first.time_mjd, second.time_mjd) == (61000.5, 61000.6)  # times stay per image
