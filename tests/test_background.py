"""Background and rms maps: truth on pure noise, layout, and the on-demand rms map."""

from __future__ import annotations

import numpy as np
import pytest

from trapline.extract.background import background_maps


@pytest.mark.parametrize(("shape", "cell"), [((512, 512), 32), ((300, 257), 32),
                                             ((100, 50), 25), ((40, 40), 40)])
def test_maps_recover_known_noise_and_offset(shape, cell):
    rng = np.random.default_rng(1)
    data = (0.25 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    maps = background_maps(data, min(cell, max(shape)))
    assert np.median(maps.rms) == pytest.approx(0.01, rel=0.05)
    assert np.median(maps.background) == pytest.approx(0.25, abs=0.002)
    # C order: a transposed layout made every later full-image step several times slower
    assert maps.rms.flags.c_contiguous and maps.background.flags.c_contiguous


@pytest.mark.parametrize(("shape", "cell"), [((1024, 1024), 32), ((300, 257), 32),
                                             ((100, 50), 25), ((40, 40), 40), ((513, 700), 16)])
def test_rms_on_demand_equals_the_full_map(shape, cell):
    """What the pipeline ships between processes instead of the rms map gives the same
    values bit for bit, NaN where the image is blank."""
    rng = np.random.default_rng(2)
    data = rng.standard_normal(shape).astype(np.float32)
    data[:7] = np.nan
    data[20:30, 10:30] = np.nan
    maps = background_maps(data, min(cell, max(shape)))
    lazy = maps.rms_on_demand(data)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    got = lazy[yy.ravel(), xx.ravel()].reshape(shape)
    assert np.array_equal(got, maps.rms, equal_nan=True)
    assert np.isnan(got[:7]).all() and np.isfinite(got[40:]).all()
    picks = rng.integers(0, shape[0], 50), rng.integers(0, shape[1], 50)
    assert np.array_equal(lazy[picks], maps.rms[picks], equal_nan=True)


@pytest.mark.parametrize("shape", [(32, 32), (1024, 32), (64, 64), (70, 33)])
def test_cell_statistics_leaves_the_image_alone(shape):
    """Cells are sorted in place: never in the caller's pixels (a single column of
    cells groups as a view of them)."""
    from trapline.extract.background import cell_statistics

    data = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    before = data.copy()
    cell_statistics(data, 32)
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("outside", [1e-8, 1e-5, 0.0])
def test_numerical_blanking_beyond_a_field_edge_gives_no_sources(outside):
    """A field whose pixels beyond a disc are written as tiny numbers instead of NaN
    (as the 3C295 LOFAR image is): the cells straddling the edge must not take the
    blanking's rms, which gave the pure noise beside it S/N in the hundreds (10 false
    sources here at 1e-8)."""
    from trapline.extract import ExtractionConfig, extract
    from trapline.image import Beam, Image

    rng = np.random.default_rng(4)
    ny = nx = 256
    data = rng.standard_normal((ny, nx))
    yy, xx = np.mgrid[:ny, :nx]
    disc = np.hypot(yy - 127.5, xx - 127.5) <= 100
    data[~disc] *= outside
    grid_rms = background_maps(data.astype(np.float32), 32).grid_rms
    assert np.nanmin(grid_rms) > 0.5  # every cell kept has the disc's noise, ~1
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [180.0, 40.0], [128, 128], [-0.01, 0.01]
    image = Image(data=data.astype(np.float32), wcs=wcs, beam=Beam(0.03, 0.03, 0.0),
                  time_mjd=60000.0, freq_hz=1.4e8)
    assert len(extract(image, ExtractionConfig(detection_sigma=5)).sources) == 0


@pytest.mark.parametrize(("shape", "cell"), [((256, 256), 32), ((300, 257), 32), ((150, 120), 25)])
def test_cells_left_out_by_the_blank_mask_change_nothing(shape, cell):
    """Given the NaN mask, cells with too few valid pixels are skipped before sorting:
    the same values as computing every cell, bit for bit (an all-sky disc, a blanked
    strip that leaves some cells just above and just below the valid fraction)."""
    from trapline.extract.background import cell_statistics

    rng = np.random.default_rng(6)
    data = (0.1 + rng.standard_normal(shape)).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    data[np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) > min(shape) / 2] = np.nan
    data[:, 5:8] = np.nan  # 3 columns of a cell: below 90% valid for cell 25, above for 32
    blank = np.isnan(data)
    every = cell_statistics(data, cell)
    skipped = cell_statistics(data, cell, blank=blank)
    for a, b in zip(every, skipped, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(every[1]).any() and np.isfinite(every[1]).any()


def _clipped_reference(values: np.ndarray, kappa: float = 2.0, iterations: int = 50):
    """The clipping of one cell written out directly, in float64 (slow and plain)."""
    from trapline.extract.background import _truncation_factor

    v = np.sort(values[np.isfinite(values)]).astype(np.float64)
    truncation = _truncation_factor(kappa)
    lo, hi = 0, len(v)
    mean, sigma, median = v.mean(), v.std(ddof=1), np.median(v)
    for _ in range(iterations):
        new = (np.searchsorted(v, median - kappa * sigma, side="left"),
               np.searchsorted(v, median + kappa * sigma, side="right"))
        if new == (lo, hi):
            break
        lo, hi = new
        w = v[lo:hi]
        mean, sigma, median = w.mean(), w.std(ddof=1) / truncation, np.median(w)
    background = median if abs(mean - median) / sigma > 0.3 else 2.5 * median - 1.5 * mean
    return background, sigma


def test_cell_statistics_equal_a_direct_float64_clipping():
    """Every cell of a simulated sky with sources, on an offset that makes float32
    cancellation matter, against the clipping written out cell by cell in float64
    (float32 prefix sums were off by up to 0.9% in the rms of some cells)."""
    from trapline.extract.background import cell_statistics
    from trapline.simulate import SimulationConfig, iter_images

    image, _ = next(iter_images(SimulationConfig(seed=2, epochs=1, size=512, n_steady=80)))
    data = np.asarray(image.data, np.float32) + np.float32(3.0)
    background, rms = cell_statistics(data, 32)
    for i in range(16):
        for j in range(16):
            ref_bg, ref_rms = _clipped_reference(data[32 * i:32 * (i + 1), 32 * j:32 * (j + 1)])
            assert rms[i, j] == pytest.approx(ref_rms, rel=1e-6)
            assert abs(background[i, j] - ref_bg) < 1e-6 * ref_rms
