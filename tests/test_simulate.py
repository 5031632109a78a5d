"""The sky simulator: noise statistics, source rendering, populations, files and command."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.time import Time

from trapline.cli import main
from trapline.errors import ConfigError
from trapline.image import FWHM_PER_SIGMA, beam_to_pixels
from trapline.io import read_fits
from trapline.simulate import (
    SOURCE_COLUMNS,
    TRUTH_COLUMNS,
    SimulationConfig,
    iter_images,
    make_sky,
    render_image,
    truth_table,
    write_series,
)

NO_SOURCES = {"n_steady": 0, "n_variable": 0, "n_transient": 0, "n_fading": 0}


def small(**kw) -> SimulationConfig:
    """A quick config: 128 px, few sources, unless overridden."""
    base = {
        "size": 128,
        "epochs": 4,
        "n_steady": 3,
        "n_variable": 2,
        "n_transient": 1,
        "n_fading": 1,
    }
    base.update(kw)
    return SimulationConfig(**base)


def autocorrelation(data: np.ndarray, dx: int, dy: int) -> float:
    """Sample correlation coefficient between pixels (dx, dy) >= 0 apart."""
    ny, nx = data.shape
    a = data[: ny - dy, : nx - dx].astype(float)
    b = data[dy:, dx:].astype(float)
    a, b = a - a.mean(), b - b.mean()
    return float(np.sum(a * b) / math.sqrt(np.sum(a * a) * np.sum(b * b)))


# ---- determinism ----------------------------------------------------------------------


def test_same_seed_same_images_and_truth():
    config = small(seed=7, bands=2, jitter_arcsec=2.0, spectral_index_scatter=0.3)
    first = list(iter_images(config))
    second = list(iter_images(config))
    assert len(first) == config.epochs * config.bands
    for (im1, t1), (im2, t2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(im1.data, im2.data)
        pd.testing.assert_frame_equal(t1, t2)
    # Each image is rendered from its own derived generator: order does not matter.
    sky = make_sky(config)
    np.testing.assert_array_equal(render_image(config, sky, 3, 1).data, first[7][0].data)
    # Another seed gives another sky and other noise.
    other = render_image(small(seed=8), make_sky(small(seed=8)), 0, 0)
    assert not np.array_equal(other.data, first[0][0].data)


# ---- noise ----------------------------------------------------------------------------


def test_noise_rms_matches_request():
    config = SimulationConfig(size=512, rms_jy=2.5e-3, **NO_SOURCES)
    sky = make_sky(config)
    stds = [float(np.std(render_image(config, sky, e, 0).data)) for e in range(2)]
    for std in stds:
        assert std == pytest.approx(2.5e-3, rel=0.03)
    assert np.mean(stds) == pytest.approx(2.5e-3, rel=0.02)


def test_noise_is_correlated_like_the_beam():
    # Circular beam: correlation exp(-d^2 / (4 sigma^2)) at a lag of d pixels.
    config = SimulationConfig(size=1024, beam_arcsec=(40.0, 40.0, 0.0), **NO_SOURCES)
    data = render_image(config, make_sky(config), 0, 0).data
    sigma = 4.0 / FWHM_PER_SIGMA
    for dx, dy in [(1, 0), (0, 1), (2, 0), (3, 3)]:
        expected = math.exp(-(dx * dx + dy * dy) / (4.0 * sigma**2))
        assert autocorrelation(data, dx, dy) == pytest.approx(expected, abs=0.015)
    assert abs(autocorrelation(data, 12, 0)) < 0.02  # uncorrelated far beyond the beam


def test_noise_correlation_follows_elliptical_beam_orientation():
    # Elliptical beam, PA 0: major axis north (along y), so y lags decorrelate more slowly.
    config = SimulationConfig(size=1024, beam_arcsec=(50.0, 25.0, 0.0), **NO_SOURCES)
    image = render_image(config, make_sky(config), 0, 0)
    cov = beam_to_pixels(image.beam, image.wcs).covariance
    inv = np.linalg.inv(cov)
    for dx, dy in [(1, 0), (0, 1), (2, 0), (0, 2)]:
        d = np.array([dx, dy], float)
        expected = math.exp(-0.25 * d @ inv @ d)
        assert autocorrelation(image.data, dx, dy) == pytest.approx(expected, abs=0.015)
    assert autocorrelation(image.data, 0, 2) > autocorrelation(image.data, 2, 0) + 0.2


# ---- sources --------------------------------------------------------------------------


def test_source_rendered_at_its_subpixel_position():
    config = small(n_steady=1, n_variable=0, n_transient=0, n_fading=0, seed=3, jitter_arcsec=3)
    sky = make_sky(config)
    image = render_image(config, sky, 2, 0, noise=False)
    truth = truth_table(config, sky, 2, 0).iloc[0]
    # The truth position (sky) through the image WCS, independently of the simulator.
    x0, y0 = image.sky_to_pixel(truth["ra"], truth["dec"])
    x0, y0 = float(x0), float(y0)
    assert (x0 % 1.0, y0 % 1.0) != (0.0, 0.0)
    assert x0 == pytest.approx(truth["x"], abs=1e-6) and y0 == pytest.approx(truth["y"], abs=1e-6)
    # Jitter moved the rendered position away from the catalogue position.
    assert math.hypot(x0 - sky.x[0], y0 - sky.y[0]) > 0.01
    inv = np.linalg.inv(beam_to_pixels(image.beam, image.wcs).covariance)
    yy, xx = np.mgrid[0 : config.size, 0 : config.size]
    dx, dy = xx - x0, yy - y0
    model = truth["peak_jy"] * np.exp(
        -0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy)
    )
    near = np.hypot(dx, dy) < 6
    np.testing.assert_allclose(image.data[near], model[near], rtol=1e-5, atol=1e-9)
    # The flux-weighted centroid is the true position.
    w = image.data.astype(float)
    assert np.sum(w * xx) / w.sum() == pytest.approx(x0, abs=1e-3)
    assert np.sum(w * yy) / w.sum() == pytest.approx(y0, abs=1e-3)
    assert np.unravel_index(np.argmax(w), w.shape) == (round(y0), round(x0))


def test_transients_are_off_before_start_and_after_end():
    config = small(
        n_steady=0,
        n_variable=0,
        n_fading=0,
        n_transient=4,
        epochs=7,
        transient_start_epoch=3,
        transient_duration=2,
        rms_jy=2e-3,
    )
    sky = make_sky(config)
    assert set(sky.start_epoch) == {3} and set(sky.end_epoch) == {4}
    for epoch in range(config.epochs):
        image = render_image(config, sky, epoch, 0, noise=False)
        truth = truth_table(config, sky, epoch, 0)
        values = image.data[np.rint(truth["y"]).astype(int), np.rint(truth["x"]).astype(int)]
        if 3 <= epoch <= 4:
            assert (truth["peak_jy"] >= 10 * config.rms_jy).all()
            assert (values > 0.5 * truth["peak_jy"]).all()
        else:
            assert (truth["peak_jy"] == 0).all()
            assert not image.data.any()


def test_random_transient_epochs_start_after_first_epoch():
    config = small(n_steady=0, n_variable=0, n_fading=0, n_transient=20, epochs=6, size=512)
    sky = make_sky(config)
    assert (sky.start_epoch >= 1).all() and (sky.end_epoch <= 5).all()
    assert (sky.end_epoch - sky.start_epoch + 1 <= 3).all()
    assert (sky.flux_jy[:, 0] == 0).all()


def test_populations_light_curves_and_spectra():
    config = small(
        size=512,
        epochs=10,
        bands=3,
        n_steady=30,
        n_variable=10,
        n_fading=5,
        spectral_index=-0.7,
        spectral_index_scatter=0.2,
    )
    sky = make_sky(config)
    pop = sky.population
    steady = sky.flux_jy[pop == "steady"]
    assert (steady == steady[:, :1]).all()
    snr = steady[:, 0] / config.rms_jy
    assert snr.max() < 500 / 0.9 and snr.min() > 5 * 0.9
    variable = sky.flux_jy[pop == "variable"]
    assert (variable.std(axis=1) > 0).all()
    assert (np.diff(sky.flux_jy[pop == "fading"], axis=1) < 0).all()
    # Spectral index: band fluxes follow (freq / centre) ** alpha; S/N minimum in every band.
    freqs = config.freqs_hz
    assert freqs[1] == config.freq_hz and freqs[2] - freqs[0] == 2 * config.band_spacing_hz
    on = sky.flux_jy[:, 0] > 0
    assert on.sum() == len(sky) - 1  # all but the transient
    ratio = sky.peak_jy(0, freqs[0])[on] / sky.peak_jy(0, freqs[2])[on]
    np.testing.assert_allclose(ratio, (freqs[0] / freqs[2]) ** sky.spectral_index[on])
    for band in range(3):
        peaks = sky.peak_jy(0, freqs[band])[pop == "steady"]
        assert (peaks >= 5 * config.rms_jy * (1 - 1e-9)).all()
    # Isolated and away from the edge.
    fwhm = config.pixel_beam().sigma_maj * FWHM_PER_SIGMA
    d = np.hypot(sky.x[:, None] - sky.x[None, :], sky.y[:, None] - sky.y[None, :])
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 5 * fwhm
    edge = np.minimum.reduce([sky.x, sky.y, config.size - 1 - sky.x, config.size - 1 - sky.y])
    assert edge.min() >= 3 * fwhm


def test_too_many_sources_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot place"):
        make_sky(small(size=64, n_steady=100))
    with pytest.raises(ConfigError, match="epochs"):
        SimulationConfig(epochs=0)


# ---- all-sky --------------------------------------------------------------------------


def test_allsky_has_nan_beyond_the_horizon_and_sources_inside():
    config = SimulationConfig(allsky=True, size=256, epochs=2, n_steady=40)
    sky = make_sky(config)
    image = render_image(config, sky, 1, 0)
    truth = truth_table(config, sky, 1, 0)
    c = (config.size - 1) / 2
    yy, xx = np.mgrid[0 : config.size, 0 : config.size]
    r = np.hypot(xx - c, yy - c)
    radius = config.size / 2 - 1
    assert np.isnan(image.data[r > radius]).all()
    assert np.isfinite(image.data[r <= radius]).all()
    # The horizon: pixels just inside map to the sky, just outside do not (SIN projection).
    ra, dec = image.pixel_to_sky(np.array([c + radius - 0.5, c + radius + 0.5]), np.array([c, c]))
    assert np.isfinite(ra[0]) and np.isnan(ra[1])
    assert (np.hypot(truth["x"] - c, truth["y"] - c) < radius - 3).all()
    assert np.isfinite(truth[["ra", "dec"]].to_numpy()).all()


# ---- files and command ----------------------------------------------------------------


def test_written_fits_read_back_with_beam_time_and_frequency(tmp_path: Path):
    config = small(epochs=3, bands=2, cadence_s=10.0, beam_arcsec=(45.0, 32.0, -20.0))
    files = write_series(config, tmp_path)
    names = sorted(p.name for p in tmp_path.glob("*.fits"))
    assert names == [p.name for p in files.images]  # file name order is time, band order
    assert names[:2] == ["epoch0000_band0.fits", "epoch0000_band1.fits"]
    dates = []
    for path, (image, _) in zip(files.images, iter_images(config), strict=True):
        header = fits.getheader(path)
        for key in ("BMAJ", "BMIN", "BPA", "DATE-OBS", "RESTFRQ", "FREQ", "BUNIT"):
            assert key in header
        assert header["CTYPE1"] == "RA---SIN" and header["CTYPE2"] == "DEC--SIN"
        assert header["BUNIT"].upper() == "JY/BEAM"
        dates.append(Time(header["DATE-OBS"], scale="utc").mjd)
        back = read_fits(path)
        assert back.data.dtype == np.float32
        np.testing.assert_array_equal(back.data, image.data)
        assert back.beam.bmaj_deg == pytest.approx(45.0 / 3600)
        assert back.beam.bmin_deg == pytest.approx(32.0 / 3600)
        assert back.beam.bpa_deg == pytest.approx(-20.0)
        assert back.time_mjd == pytest.approx(image.time_mjd, abs=1e-3 / 86400)
        assert back.freq_hz == image.freq_hz
    steps = np.diff(dates[:: config.bands]) * 86400
    np.testing.assert_allclose(steps, 10.0, atol=1e-3)
    assert dates[0] == pytest.approx(Time(config.start_time).mjd, abs=1e-3 / 86400)
    assert dates[0] == dates[1]  # bands of one epoch share the time


def test_command_writes_images_truth_and_sources(tmp_path: Path, capsys):
    out = tmp_path / "sim"
    argv = ["simulate", str(out)] + (
        "--seed 5 --epochs 3 --bands 2 --size 256 --n-steady 8 --n-variable 2 --n-transient 2 "
        "--n-fading 1 --jitter-arcsec 2 --beam-arcsec 40 30 30 --rms 0.002"
    ).split()
    assert main(argv) == 0
    assert "6 images" in capsys.readouterr().out
    truth = pd.read_csv(out / "truth.csv")
    sources = pd.read_csv(out / "sources.csv")
    assert list(truth.columns) == TRUTH_COLUMNS
    assert list(sources.columns) == SOURCE_COLUMNS
    required = "source_id population ra dec epoch band image time freq_hz peak_jy rms_jy"
    assert set(required.split()) <= set(truth.columns)
    assert len(truth) == 13 * 3 * 2 and len(sources) == 13
    assert set(truth["image"]) == {p.name for p in out.glob("*.fits")}
    assert (truth["rms_jy"] == 0.002).all()
    transients = sources[sources["population"] == "transient"]
    assert transients["start_epoch"].notna().all() and sources["start_epoch"].notna().sum() == 2
    for _, row in transients.iterrows():
        rows = truth[truth["source_id"] == row["source_id"]]
        off = (rows["epoch"] < row["start_epoch"]) | (rows["epoch"] > row["end_epoch"])
        assert (rows.loc[off, "peak_jy"] == 0).all() and (rows.loc[~off, "peak_jy"] > 0).all()
    # Same seed, same bytes.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_command_rejects_bad_options(tmp_path: Path, capsys):
    assert main(["simulate", str(tmp_path), "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err
