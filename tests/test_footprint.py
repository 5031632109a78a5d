"""The depth map's footprint of an image: exactly the HEALPix cells whose centre falls
on it, and reused while a drifting pointing (a zenith-pointed all-sky monitor) moves less
than half a pixel."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS
from astropy_healpix import HEALPix

from trapline.image import Beam, Image
from trapline.pipeline.depth import DepthMap, cells_on_image


def make_image(crval, size: int, pixel_deg: float, proj: str = "SIN", pc=None) -> Image:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [f"RA---{proj}", f"DEC--{proj}"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    wcs.wcs.cdelt = [-pixel_deg, pixel_deg]
    if pc is not None:
        wcs.wcs.pc = pc
    wcs.wcs.set()
    return Image(data=np.zeros((size, size), np.float32), wcs=wcs,
                 beam=Beam(3 * pixel_deg, 2 * pixel_deg, 0.0), time_mjd=60000.0, freq_hz=6e7)


def brute_force(hp: HEALPix, image: Image):
    cells = np.arange(hp.npix)
    lon, lat = hp.healpix_to_lonlat(cells)
    with np.errstate(invalid="ignore"):
        x, y = image.sky_to_pixel(lon.deg, lat.deg)
    ny, nx = image.shape
    ok = np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    return cells[ok], np.rint(x[ok]), np.rint(y[ok])


ROTATED = [[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]]


@pytest.mark.parametrize(("crval", "size", "pixel_deg", "proj", "pc", "nside"), [
    ((150.0, 30.0), 128, 180 / np.pi / 63, "SIN", None, 64),  # all-sky: disc to the horizon
    ((150.0, 52.9), 200, 180 / np.pi / 99, "SIN", None, 128),  # all-sky, LOFAR latitude
    ((0.3, 10.0), 300, 0.02, "SIN", None, 256),  # across RA 0/360
    ((40.0, 89.0), 300, 0.02, "TAN", None, 256),  # over the pole
    ((210.0, -45.0), 257, 0.03, "TAN", ROTATED, 128),  # rotated axes
])
def test_cells_on_image_equal_brute_force(crval, size, pixel_deg, proj, pc, nside):
    hp = HEALPix(nside=nside, order="nested")
    image = make_image(crval, size, pixel_deg, proj, pc)
    cells, x, y = cells_on_image(hp, image)
    expected = brute_force(hp, image)
    assert len(expected[0]) > 100
    np.testing.assert_array_equal(cells, expected[0])
    np.testing.assert_array_equal(x, expected[1])
    np.testing.assert_array_equal(y, expected[2])


def test_footprint_is_reused_while_a_drifting_pointing_moves_under_half_a_pixel():
    """An all-sky image centred on the zenith: its RA follows the sidereal rate. A
    footprint is reused while the sky moved less than FOOTPRINT_SHIFT_PIX (the centre
    moved 0.3 pixel in RA: the equator 0.3 pixel, the centre less), then computed anew,
    with the pixels where the new WCS puts the cells."""
    depth = DepthMap(nside=64)
    size = 128
    pixel = 180 / np.pi / 63
    first = depth.footprint(make_image((150.0, 52.9), size, pixel))
    reused = depth.footprint(make_image((150.0 + 0.3 * pixel, 52.9), size, pixel))
    assert reused is first
    moved = make_image((150.0 + 2 * pixel, 52.9), size, pixel)
    fresh = depth.footprint(moved)
    assert fresh is not first
    cells, x, y = brute_force(depth.healpix, moved)
    np.testing.assert_array_equal(depth._cells[fresh.slots], cells)
    np.testing.assert_array_equal(fresh.x, x)
    # Back at the first pointing (another field of the same geometry): its own footprint.
    assert depth.footprint(make_image((150.0, 52.9), size, pixel)) is first


def test_an_image_off_the_sky_has_an_empty_footprint():
    """Every pixel beyond the SIN projection's horizon (reference pixel far outside)."""
    image = make_image((150.0, 30.0), 64, 0.5)
    image.wcs.wcs.crpix = [-1000.0, -1000.0]
    image.wcs.wcs.set()
    cells, x, y = cells_on_image(HEALPix(nside=64, order="nested"), image)
    assert len(cells) == len(x) == len(y) == 0
