"""Bad input to extraction: a clear ImageError or a correct result, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from trapline.errors import ImageError
from trapline.extract import ExtractionConfig, extract
from trapline.image import Beam, Image
from trapline.io import read_fits, write_fits
from trapline.simulate import SimulationConfig, make_sky, render_image

CONFIG = SimulationConfig(seed=7, epochs=1, size=256, n_steady=12, n_variable=0,
                          n_transient=0, n_fading=0, steady_snr=(30, 200))


@pytest.fixture(scope="module")
def simulated():
    sky = make_sky(CONFIG)
    return render_image(CONFIG, sky, 0, 0), sky


def _n_found(image: Image) -> int:
    return len(extract(image, ExtractionConfig(detection_sigma=8)).sources)


def test_clean_image_finds_all(simulated):
    image, _ = simulated
    assert _n_found(image) == CONFIG.n_steady


def test_scattered_nan_pixels(simulated):
    image, _ = simulated
    data = image.data.copy()
    rng = np.random.default_rng(0)
    data[rng.random(data.shape) < 0.01] = np.nan
    result = extract(Image(data, image.wcs, image.beam, image.time_mjd, image.freq_hz))
    # A blanked pixel inside an island must not lose the source.
    assert len(result.sources) >= CONFIG.n_steady - 1
    assert np.isfinite(result.sources.peak_jy).all()


def test_inf_pixels_are_blanked(simulated):
    image, _ = simulated
    data = image.data.copy()
    data[10, 10], data[20, 30] = np.inf, -np.inf
    result = extract(Image(data, image.wcs, image.beam, image.time_mjd, image.freq_hz))
    assert len(result.sources) == CONFIG.n_steady
    assert np.isnan(result.maps.rms[10, 10])


def test_allsky_horizon():
    config = SimulationConfig(seed=3, epochs=1, size=256, allsky=True, n_steady=10,
                              n_variable=0, n_transient=0, n_fading=0, steady_snr=(30, 200))
    image = render_image(config, make_sky(config), 0, 0)
    assert np.isnan(image.data).any()
    result = extract(image)
    assert len(result.sources) == 10
    assert np.isfinite(result.sources.ra_deg).all()


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_constant_image_is_a_clear_error(simulated, value):
    image, _ = simulated
    flat = np.full(image.shape, value, dtype=np.float32)
    with pytest.raises(ImageError) as err:
        extract(Image(flat, image.wcs, image.beam, image.time_mjd, image.freq_hz))
    assert err.value.reason == "flat"


def test_all_nan_image_is_a_clear_error(simulated):
    image, _ = simulated
    blank = np.full(image.shape, np.nan, dtype=np.float32)
    with pytest.raises(ImageError) as err:
        extract(Image(blank, image.wcs, image.beam, image.time_mjd, image.freq_hz))
    assert err.value.reason == "no_data"


def test_tiny_image(simulated):
    image, _ = simulated
    tiny = image.data[:12, :12].copy()
    result = extract(Image(tiny, image.wcs, image.beam, image.time_mjd, image.freq_hz))
    assert len(result.sources) == 0
    with pytest.raises(ImageError):
        extract(Image(tiny[:4, :4].copy(), image.wcs, image.beam, image.time_mjd, image.freq_hz))


def test_unmeasurable_source_is_skipped_not_fatal(simulated):
    image, _ = simulated
    data = image.data.copy()
    # A one-pixel spike: an island too small to fit, next to good sources.
    data[128, 5] = 1.0
    result = extract(Image(data, image.wcs, image.beam, image.time_mjd, image.freq_hz),
                     ExtractionConfig(method="fit"))
    assert len(result.sources) >= CONFIG.n_steady
    assert result.n_islands == len(result.sources) + sum(result.skipped.values())


def _write(path, data, header):
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def _header(image: Image) -> fits.Header:
    h = image.wcs.to_header()
    h["BMAJ"], h["BMIN"], h["BPA"] = image.beam.bmaj_deg, image.beam.bmin_deg, image.beam.bpa_deg
    h["DATE-OBS"] = "2026-01-01T00:00:00"
    h["RESTFRQ"] = 150e6
    return h


def test_degenerate_frequency_and_stokes_axes(simulated, tmp_path):
    image, _ = simulated
    h = _header(image)
    h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = "FREQ", 1.4e8, 1e6, 1.0
    h["CTYPE4"], h["CRVAL4"], h["CDELT4"], h["CRPIX4"] = "STOKES", 1.0, 1.0, 1.0
    del h["RESTFRQ"]
    path = _write(tmp_path / "cube.fits", image.data[None, None], h)
    loaded = read_fits(path)
    assert loaded.freq_hz == pytest.approx(1.4e8)
    assert _n_found(loaded) == CONFIG.n_steady


def test_real_cube_axis_must_be_degenerate(simulated, tmp_path):
    image, _ = simulated
    h = _header(image)
    h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = "FREQ", 1.4e8, 1e6, 1.0
    path = _write(tmp_path / "cube.fits", np.stack([image.data, image.data]), h)
    with pytest.raises(ImageError) as err:
        read_fits(path)
    assert err.value.reason == "bad_shape"


def _rotated_wcs(kind: str) -> fits.Header:
    """A SIN WCS rotated by 30 deg, written with CD, PC or CROTA2 keywords."""
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---SIN", "DEC--SIN"
    h["CRVAL1"], h["CRVAL2"] = 150.0, 30.0
    h["CRPIX1"], h["CRPIX2"] = 128.5, 128.5
    scale, rot = 10 / 3600, np.radians(30)
    c, s = np.cos(rot), np.sin(rot)
    if kind == "cd":
        h["CD1_1"], h["CD1_2"] = -scale * c, -scale * s
        h["CD2_1"], h["CD2_2"] = -scale * s, scale * c
    elif kind == "pc":
        h["CDELT1"], h["CDELT2"] = -scale, scale
        h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = c, -s, s, c
    else:
        h["CDELT1"], h["CDELT2"] = -scale, scale
        h["CROTA2"] = 30.0
    return h


@pytest.mark.parametrize("kind", ["cd", "pc", "crota2"])
def test_rotated_wcs_positions_and_beam(kind, tmp_path):
    from trapline.simulate.render import paint_sources

    h = _rotated_wcs(kind)
    wcs = WCS(h)
    beam = Beam(40 / 3600, 25 / 3600, 60.0)
    h["BMAJ"], h["BMIN"], h["BPA"] = beam.bmaj_deg, beam.bmin_deg, beam.bpa_deg
    h["DATE-OBS"] = "2026-01-01T00:00:00"
    rng = np.random.default_rng(1)
    data = rng.normal(0, 1e-3, (256, 256)).astype(np.float32)
    image = Image(data, wcs, beam, 0.0, 1e8)
    ra = np.array([149.9, 150.05, 150.1])
    dec = np.array([29.95, 30.0, 30.08])
    x, y = image.sky_to_pixel(ra, dec)
    paint_sources(data, x, y, np.array([1.0, 1.0, 1.0]), image.pixel_beam())
    path = _write(tmp_path / f"{kind}.fits", data, h)
    found = extract(read_fits(path), ExtractionConfig(method="fit")).sources.to_pandas()
    found = found.sort_values("ra_deg").reset_index(drop=True)
    assert len(found) == 3
    assert np.allclose(found.ra_deg, ra, atol=1e-5)
    assert np.allclose(found.dec_deg, dec, atol=1e-5)
    # The fitted shape equals the beam on the sky whatever the pixel rotation.
    assert np.allclose(found.smaj_asec, 40, rtol=0.01)
    assert np.allclose(found.smin_asec, 25, rtol=0.01)
    assert np.allclose(found.pa_deg, 60, atol=0.5)


def test_no_wcs(tmp_path):
    path = _write(tmp_path / "nowcs.fits", np.zeros((64, 64), np.float32),
                  fits.Header({"BMAJ": 0.01, "BMIN": 0.01, "BPA": 0}))
    with pytest.raises(ImageError) as err:
        read_fits(path)
    assert err.value.reason == "no_wcs"


def test_no_beam_unless_configured(simulated, tmp_path):
    image, _ = simulated
    h = _header(image)
    for key in ("BMAJ", "BMIN", "BPA"):
        del h[key]
    path = _write(tmp_path / "nobeam.fits", image.data, h)
    with pytest.raises(ImageError) as err:
        read_fits(path)
    assert err.value.reason == "no_beam"
    assert "beam" in str(err.value)
    loaded = read_fits(path, beam=image.beam)
    assert _n_found(loaded) == CONFIG.n_steady


def test_aips_history_beam(simulated, tmp_path):
    image, _ = simulated
    h = _header(image)
    for key in ("BMAJ", "BMIN", "BPA"):
        del h[key]
    h.add_history(f"AIPS   CLEAN BMAJ=  {image.beam.bmaj_deg:.6E} BMIN=  "
                  f"{image.beam.bmin_deg:.6E} BPA=  {image.beam.bpa_deg:.2f}")
    loaded = read_fits(_write(tmp_path / "aips.fits", image.data, h))
    assert loaded.beam.bmaj_deg == pytest.approx(image.beam.bmaj_deg, rel=1e-5)


def test_truncated_and_non_fits(simulated, tmp_path):
    image, _ = simulated
    good = tmp_path / "good.fits"
    write_fits(image, good)
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: 2880 + 1000])
    text = tmp_path / "notes.fits"
    text.write_text("this is not a FITS file\n")
    for path in (truncated, text, tmp_path / "missing.fits"):
        with pytest.raises(ImageError) as err:
            read_fits(path)
        assert err.value.reason == "unreadable"
        assert str(path) in str(err.value)


def test_extract_command(simulated, tmp_path, capsys):
    from trapline.cli import main

    image, _ = simulated
    path = tmp_path / "img.fits"
    write_fits(image, path)
    assert main(["extract", str(path), "--format", "json"]) == 0
    out = capsys.readouterr().out
    import json

    rows = json.loads(out)
    assert len(rows) == CONFIG.n_steady
    assert {"ra_deg", "peak_jy", "flux_err_jy", "smaj_asec"} <= set(rows[0])
    assert main(["extract", str(tmp_path / "missing.fits")]) == 2
