"""Per-image calibration (trapline.pipeline.calibrate) against the simulator's injected
instrument: a 15% per-image gain scatter and an ionospheric offset and gradient that
scale as freq^-2, measured on the known sources of a sky model (or a user catalogue)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from helpers import match_to_truth
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trapline.errors import ConfigError
from trapline.extract.catalogue import Catalogue
from trapline.geometry import offsets_deg, shift_position
from trapline.pipeline.calibrate import (
    Calibration,
    apply,
    calibrate,
    calibration_check,
    clipped_fit,
    load_reference_catalogue,
)
from trapline.pipeline.config import (
    CalibrationSection,
    PipelineConfig,
    config_from_dict,
    defaults_toml,
)
from trapline.pipeline.decide import SkyDecider
from trapline.pipeline.measure import measure
from trapline.pipeline.skymodel import SkyModel
from trapline.simulate import SimulationConfig, make_sky, render_image, write_series

# 512 x 512 pixels of 10 arcsec, 80 steady sources of S/N 10-200, 6 epochs in two bands
# 30 MHz apart; per image a gain of std 15%, per epoch an ionospheric shift of rms 20
# arcsec (half a beam) and a gradient of rms 10 arcsec/deg, both at 150 MHz.
CONFIG = SimulationConfig(
    seed=3, size=512, epochs=6, bands=2, band_spacing_hz=30e6, n_steady=80, n_variable=0,
    n_transient=0, n_fading=0, steady_snr=(10.0, 200.0), gain_scatter=0.15,
    iono_offset_arcsec=20.0, iono_gradient_arcsec_per_deg=10.0,
)
HISTORY_EPOCHS = 4
PIPELINE = PipelineConfig()
OPTIONS = CalibrationSection()


def clean_sky_model() -> SkyModel:
    """The sky model after HISTORY_EPOCHS epochs without instrument effects, run through
    the decision stage. The epochs come after those of CONFIG's series, so their noise is
    independent of the calibrated images'."""
    clean = replace(CONFIG, epochs=CONFIG.epochs + HISTORY_EPOCHS, gain_scatter=0.0,
                    iono_offset_arcsec=0.0, iono_gradient_arcsec_per_deg=0.0)
    sky = make_sky(clean)
    decider = SkyDecider(PIPELINE)
    for epoch in range(CONFIG.epochs, clean.epochs):
        decider.decide([measure(render_image(clean, sky, epoch, band), PIPELINE)
                        for band in range(clean.bands)])
    return decider.sky


def injected_model(row: pd.Series) -> np.ndarray:
    """The ionosphere of an images.csv row as Calibration parameters (deg; east, north):
    offset_east, offset_north, g_ee, g_en, g_ne, g_nn. The simulator's pixel +x axis
    points west (CDELT1 < 0) and +y north, so east = -x and north = y."""
    g = np.array([[row.iono_gxx, row.iono_gxy], [row.iono_gyx, row.iono_gyy]]) / 3600.0
    return np.array([-row.iono_dx_arcsec / 3600.0, row.iono_dy_arcsec / 3600.0,
                     g[0, 0], -g[0, 1], -g[1, 0], g[1, 1]])


def fitted_model(cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """(parameters, standard errors) of a calibration's position model, as injected_model."""
    return (np.array([cal.offset_east_deg, cal.offset_north_deg, *cal.gradient]),
            np.array([*cal.offset_err_deg, *cal.gradient_err]))


def is_identity(cal: Calibration) -> bool:
    """Scale 1 (error NaN) and no position correction, from no reference sources."""
    return (cal.flux_scale == 1.0 and math.isnan(cal.flux_scale_err) and cal.n_flux == 0
            and cal.n_position == 0 and cal.offset_east_deg == cal.offset_north_deg == 0.0
            and cal.gradient == (0.0, 0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Every image of CONFIG written to FITS, measured from its file and calibrated
    against the clean sky model: (images.csv, truth.csv, per image (measured, calibration))."""
    out = tmp_path_factory.mktemp("calibrate")
    files = write_series(CONFIG, out)
    images = pd.read_csv(files.image_table)
    truth = pd.read_csv(files.truth)
    sky = clean_sky_model()
    results = []
    for row in images.itertuples():
        measured = measure(str(out / row.image), PIPELINE)
        rec, ex = measured.record, measured.extraction
        cal = calibrate(sky, int(row.band), ex.sources, ex.image.beam.bmaj_deg, rec.centre_ra,
                        rec.centre_dec, OPTIONS)
        results.append((measured, cal))
    return images, truth, sky, results, files.sources


def test_flux_scale_matches_the_injected_gain_to_better_than_one_percent(series):
    """Injected: gains of std 15% (images.csv). Recovered: scale / gain - 1 has an rms of
    0.15% over the 12 images (their standard errors are 0.12-0.18%), on 54-60 reference
    sources per image: the flux-scale scatter left after calibration is under 1%."""
    images, _, _, results, _ = series
    gains = images.gain.to_numpy()
    assert np.std(np.log(gains)) > 0.05  # the test has something to correct
    scales = np.array([cal.flux_scale for _, cal in results])
    errors = np.array([cal.flux_scale_err for _, cal in results])
    assert all(cal.n_flux >= 40 for _, cal in results)
    residual = scales / gains - 1.0
    assert np.sqrt(np.mean(residual**2)) < 0.01
    # ... and the stated errors are honest: no image is off by more than 4 of them.
    assert np.all(np.abs(residual) < 4 * errors / scales)
    # Calibrated fluxes of the bright sources match the sky's, image by image.
    for (measured, cal), gain in zip(results, gains, strict=True):
        cat = measured.extraction.sources
        bright = cat.snr > 50
        before = np.median(cat.peak_jy[bright] / apply(cat, cal).peak_jy[bright])
        assert before == pytest.approx(cal.flux_scale, rel=1e-12)
        assert abs(cal.flux_scale / gain - 1) < 0.01


def test_position_model_recovers_the_injected_ionosphere(series):
    """Injected: per epoch an offset of rms 20 arcsec and a gradient of rms 10 arcsec/deg
    (images.csv). Every fitted parameter lies within 4 of its standard errors of the
    injected one (in practice within 1.2). After ``apply``, the bright sources' (S/N > 20)
    positions differ from the true ones by 0.95-1.21 times their own statistical errors
    (rms over both axes, per image); before, by 23-137 times."""
    images, truth, _, results, _ = series
    for row, (measured, cal) in zip(images.itertuples(), results, strict=True):
        assert cal.n_position >= 40
        fit, err = fitted_model(cal)
        assert np.all(np.abs(fit - injected_model(row)) < 4 * err)
        ex = measured.extraction
        rows, found = match_to_truth(ex.image, ex.sources.to_pandas(),
                                     truth[truth.image == row.image])
        ok = found >= 0
        cat = ex.sources.select(found[ok])
        rows = rows[ok]
        bright = cat.snr > 20
        for catalogue, low, high in ((cat, 4.0, np.inf), (apply(cat, cal), 0.0, 1.5)):
            east, north = offsets_deg(rows.sky_ra.to_numpy()[bright],
                                      rows.sky_dec.to_numpy()[bright],
                                      catalogue.ra_deg[bright], catalogue.dec_deg[bright])
            z = np.sqrt(np.mean(np.square(east / catalogue.ra_err_deg[bright]))
                        + np.mean(np.square(north / catalogue.dec_err_deg[bright])))
            z /= math.sqrt(2.0)
            assert low < z < high, (row.image, z)


def test_the_ionosphere_scales_as_frequency_to_the_minus_two_between_bands(series):
    """The same screen is fitted in both bands of an epoch: band 1's parameters are band
    0's times (f1 / f0)^-2 = 0.669, within 4 combined standard errors."""
    images, _, _, results, _ = series
    for epoch in range(CONFIG.epochs):
        idx = images.index[images.epoch == epoch].to_numpy()
        (lo, lo_cal), (hi, hi_cal) = ((images.iloc[i], results[i][1]) for i in idx)
        ratio = (hi.freq_hz / lo.freq_hz) ** -2
        (p0, e0), (p1, e1) = fitted_model(lo_cal), fitted_model(hi_cal)
        assert np.all(np.abs(p1 - ratio * p0) < 4 * np.hypot(e1, ratio * e0))
        # Not trivially: the offset changes by far more than that between the bands.
        assert np.hypot(*(p1[:2] - p0[:2])) > 10 * np.hypot(*e1[:2])


def test_no_reference_sources_gives_the_identity(series):
    """An empty sky model, one whose sources have too little history, or disabled
    calibration: scale 1, no position correction, and ``apply`` changes no value."""
    _, _, sky, results, _ = series
    measured, _ = results[0]
    ex, rec = measured.extraction, measured.record
    cat, beam = ex.sources, ex.image.beam.bmaj_deg
    little = replace(OPTIONS, min_points=HISTORY_EPOCHS + 1)
    for model, options in ((SkyModel(), OPTIONS), (sky, little),
                           (sky, replace(OPTIONS, enabled=False))):
        cal = calibrate(model, 0, cat, beam, rec.centre_ra, rec.centre_dec, options)
        assert is_identity(cal)
        out = apply(cat, cal)
        for name in Catalogue.columns():
            np.testing.assert_array_equal(getattr(out, name), getattr(cat, name))
    # No detections; a band without history.
    cal = calibrate(sky, 0, Catalogue.empty(), beam, rec.centre_ra, rec.centre_dec, OPTIONS)
    assert is_identity(cal)
    cal = calibrate(sky, 7, cat, beam, rec.centre_ra, rec.centre_dec, OPTIONS)
    assert cal.n_flux == cal.n_position == 0


def test_a_reference_source_that_tripled_is_clipped(series):
    """The brightest reference source triples in this image: it is clipped, so the scale
    is exactly that of the other references (here 0.2 of its error from the scale with
    it at its true flux); without clipping it moves by more than 5 errors."""
    _, _, sky, results, _ = series
    measured, cal = results[0]
    ex, rec = measured.extraction, measured.record
    cat, beam = ex.sources, ex.image.beam.bmaj_deg
    brightest = int(np.argmax(cat.snr))
    flared = cat.select(np.arange(len(cat)))
    flared.peak_jy[brightest] *= 3.0
    out = calibrate(sky, 0, flared, beam, rec.centre_ra, rec.centre_dec, OPTIONS)
    others = calibrate(sky, 0, cat.select(np.arange(len(cat)) != brightest), beam,
                       rec.centre_ra, rec.centre_dec, OPTIONS)
    assert out.n_flux == others.n_flux == cal.n_flux - 1
    assert out.flux_scale == pytest.approx(others.flux_scale, rel=1e-12)
    assert abs(out.flux_scale - cal.flux_scale) < cal.flux_scale_err
    unclipped = calibrate(sky, 0, flared, beam, rec.centre_ra, rec.centre_dec,
                          replace(OPTIONS, clip_sigma=1e9))
    assert unclipped.n_flux > out.n_flux
    assert abs(unclipped.flux_scale - cal.flux_scale) > 5 * cal.flux_scale_err


def rebuilt(sky: SkyModel, swing: int | None = None,
            extra: tuple[np.ndarray, np.ndarray] | None = None) -> SkyModel:
    """A sky model of the sources of ``sky`` with HISTORY_EPOCHS points each at its mean
    peak in band 0 (source ``swing``'s alternating at 0.5 and 1.5 times it), plus blind
    sources without history at the ``extra`` (ra, dec) positions."""
    model = SkyModel()
    s = sky.sources
    rows = model.add(s.ra, s.dec, *sky.errors(), 0.0)
    b = sky.band(0)
    mean = b.swf_peak / b.sw_peak
    err = 1.0 / np.sqrt(b.sw_peak / b.full("n")[: len(sky)])
    for k in range(HISTORY_EPOCHS):
        peak = mean.copy()
        if swing is not None:
            peak[swing] *= (0.5, 1.5)[k % 2]
        model.add_fluxes(0, rows, peak, err, peak, err)
    if extra is not None:
        tiny = np.full(len(extra[0]), 1e-6)
        model.add(extra[0], extra[1], tiny, tiny, 0.0)
    return model


def with_neighbours(cat: Catalogue, east_deg: float) -> Catalogue:
    """The catalogue plus a faint detection ``east_deg`` east of every detection."""
    shifted = shift_position(cat.ra_deg, cat.dec_deg, np.full(len(cat), east_deg),
                             np.zeros(len(cat)))
    extra = cat.select(np.arange(len(cat)))
    extra.ra_deg, extra.dec_deg = shifted
    extra.peak_jy, extra.snr = extra.peak_jy * 0.05, extra.snr * 0.05
    return Catalogue(**{name: np.concatenate([getattr(cat, name), getattr(extra, name)])
                        for name in Catalogue.columns()})


def test_a_source_variable_in_its_history_is_no_reference(series):
    """A source whose lightcurve so far swings by a factor 3 (V 0.58, above max_v) is
    left out of the references; with max_v 0 it is used."""
    _, _, sky, results, _ = series
    measured, cal = results[0]
    ex, rec = measured.extraction, measured.record
    cat, beam = ex.sources, ex.image.beam.bmaj_deg
    mean = sky.band(0).swf_peak / sky.band(0).sw_peak
    args = (0, cat, beam, rec.centre_ra, rec.centre_dec)
    assert calibrate(rebuilt(sky), *args, OPTIONS).n_flux == cal.n_flux
    variable = rebuilt(sky, swing=int(np.argmax(mean)))
    assert calibrate(variable, *args, OPTIONS).n_flux == cal.n_flux - 1
    assert calibrate(variable, *args, replace(OPTIONS, max_v=0.0)).n_flux == cal.n_flux


def test_reference_sources_are_isolated(series):
    """A detection, or a known source, 2 beams from each reference leaves none (the
    identity) with isolation_beams 5; with isolation_beams 1.5 all stay references
    (the sources are 5 beams apart, so no neighbour comes near another source)."""
    _, _, sky, results, _ = series
    measured, cal = results[0]
    ex, rec = measured.extraction, measured.record
    cat, beam = ex.sources, ex.image.beam.bmaj_deg
    s = sky.sources
    extra = shift_position(s.ra, s.dec, np.full(len(sky), 2 * beam), np.zeros(len(sky)))
    crowded_sky, crowded_cat = rebuilt(sky, extra=extra), with_neighbours(cat, 2 * beam)
    near = replace(OPTIONS, isolation_beams=1.5)
    for options, expected in ((OPTIONS, 0), (near, None)):
        args = (beam, rec.centre_ra, rec.centre_dec, options)
        alone = calibrate(sky, 0, cat, *args).n_flux
        assert alone >= 40
        for model, detections in ((sky, crowded_cat), (crowded_sky, cat)):
            n = calibrate(model, 0, detections, *args).n_flux
            assert n == (alone if expected is None else expected)


def test_reference_catalogue_calibrates_against_true_fluxes(series, tmp_path):
    """A user catalogue of the sky's true positions and fluxes (sources.csv) in place of
    the sky model: scale / gain - 1 has an rms of 0.15% over the 12 images (a mean of
    -0.09%: the extractor's peak against the true one), the ionosphere within 4 errors
    (at most 2.9 here: the catalogue's positions have no errors, so the fit's are small)."""
    images, _, _, results, _ = series
    sources = pd.read_csv(tmp_path.parent / "calibrate0" / "sources.csv")
    path = tmp_path / "reference.csv"
    frame = pd.DataFrame({"ra": sources.ra, "dec": sources.dec,
                          "flux_jy": sources.base_flux_jy, "freq_hz": np.nan})
    # A row for another frequency only: left out at these frequencies.
    frame.loc[len(frame)] = [sources.ra[0], sources.dec[0], 100.0, 60e6]
    frame.to_csv(path, index=False)
    reference = load_reference_catalogue(path)
    assert len(reference) == len(sources) + 1
    residual = []
    for row, (measured, _) in zip(images.itertuples(), results, strict=True):
        ex, rec = measured.extraction, measured.record
        ref = reference.at(row.freq_hz, PIPELINE.image.band_tolerance_hz)
        assert len(ref) == len(sources)
        cal = calibrate(None, 0, ex.sources, ex.image.beam.bmaj_deg, rec.centre_ra,
                        rec.centre_dec, OPTIONS, reference=ref)
        assert cal.n_flux >= 40
        residual.append(cal.flux_scale / row.gain - 1.0)
        fit, err = fitted_model(cal)
        assert np.all(np.abs(fit - injected_model(row)) < 4 * err)
    assert np.sqrt(np.mean(np.square(residual))) < 0.01


@pytest.mark.parametrize("text, message", [
    ("ra,dec\n10,20\n", "row 2 needs numeric ra, dec and flux_jy"),
    ("ra,dec,flux_jy\n10,20,x\n", "row 2 needs numeric ra, dec and flux_jy"),
    ("ra,dec,flux_jy\n10,20,1\n400,20,1\n", "row 3 needs 0 <= ra < 360"),
    ("ra,dec,flux_jy\n10,20,-1\n", "flux_jy > 0"),
    ("ra,dec,flux_jy\n10,20,inf\n", "a finite flux_jy > 0"),
])
def test_reference_catalogue_errors_name_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_reference_catalogue(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="reference_catalogue .* not found"):
        load_reference_catalogue(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="reference_catalogue .* cannot be read"):
        load_reference_catalogue(tmp_path)


def test_calibration_check_rejects_a_scale_beyond_the_maximum():
    """|log scale| above max_log_scale (0.5: a factor 1.65) is a reject reason, measured
    or not; too few references only with reject_min_sources."""
    def cal(scale: float, n: int) -> Calibration:
        return replace(Calibration.identity(150.0, 30.0), flux_scale=scale, n_flux=n)

    assert calibration_check(cal(math.exp(0.49), 10), OPTIONS) is None
    assert calibration_check(cal(math.exp(-0.49), 10), OPTIONS) is None
    for scale in (math.exp(0.51), math.exp(-0.51), 2.0):
        reason = calibration_check(cal(scale, 10), OPTIONS)
        assert reason and "max_log_scale 0.5" in reason and "\n" not in reason
    assert calibration_check(cal(1.0, 0), OPTIONS) is None
    strict = replace(OPTIONS, reject_min_sources=5)
    assert "reject_min_sources 5" in calibration_check(cal(1.0, 4), strict)
    assert calibration_check(cal(1.0, 5), strict) is None


columns = st.integers(0, 12).flatmap(lambda n: st.fixed_dictionaries({
    name: arrays(np.float64, n, elements=st.floats(allow_nan=True, allow_infinity=True,
                                                   width=64))
    for name in Catalogue.columns()}))


@settings(max_examples=60, deadline=None)
@given(columns, st.floats(0.1, 10.0), st.floats(0.0, 1.0), st.floats(0.0, 359.0),
       st.floats(-80.0, 80.0), st.lists(st.floats(-0.01, 0.01), min_size=6, max_size=6))
def test_apply_never_changes_its_input(values, scale, scale_err, ra0, dec0, model):
    """Whatever the catalogue (NaN, inf, empty) and calibration, ``apply`` returns new
    arrays and leaves the input's values as they were."""
    cat = Catalogue(**values)
    before = {name: getattr(cat, name).copy() for name in Catalogue.columns()}
    cal = Calibration(scale, scale_err, 5, model[0], model[1], tuple(model[2:]), 5, ra0, dec0)
    with np.errstate(all="ignore"):
        out = apply(cat, cal)
    for name in Catalogue.columns():
        np.testing.assert_array_equal(getattr(cat, name), before[name])
        assert not np.shares_memory(getattr(out, name), getattr(cat, name))
        assert len(getattr(out, name)) == len(cat)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 359.0), st.floats(-80.0, 80.0),
       st.lists(st.floats(-0.01, 0.01), min_size=6, max_size=6),
       arrays(np.float64, 5, elements=st.floats(-2.0, 2.0)),
       arrays(np.float64, 5, elements=st.floats(-2.0, 2.0)))
def test_apply_inverts_the_position_model(ra0, dec0, model, east, north):
    """Sources at true offsets x, shifted by the model to x + offset + G x, come back to x."""
    cal = Calibration(1.0, math.nan, 0, model[0], model[1], tuple(model[2:]), 5, ra0, dec0)
    se, sn = cal.shift_deg(east, north)
    ra, dec = shift_position(ra0, dec0, east + se, north + sn)
    cat = Catalogue(**{name: np.ones(5) for name in Catalogue.columns()})
    cat.ra_deg, cat.dec_deg = ra, dec
    out = apply(cat, cal)
    e, n = offsets_deg(ra0, dec0, out.ra_deg, out.dec_deg)
    np.testing.assert_allclose(e, east, atol=1e-9)
    np.testing.assert_allclose(n, north, atol=1e-9)


def test_calibration_options_parse_and_are_checked():
    """[calibration] in the defaults document parses back to the declared defaults; bad
    values are errors naming the option."""
    text = defaults_toml()
    assert "[calibration]" in text and "reference_catalogue = \"\"" in text
    assert config_from_dict(tomllib.loads(text)).calibration == CalibrationSection()
    config = config_from_dict({"calibration": {"min_snr": 50, "fit_gradient": False}})
    assert config.calibration.min_snr == 50.0 and not config.calibration.fit_gradient
    for bad, message in (({"match_beams": 6.0}, "match_beams"), ({"clip_sigma": 0}, "clip_sigma"),
                         ({"min_sources_flux": 0}, "min_sources_flux"),
                         ({"enabled": 1}, "enabled must be true or false")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"calibration": bad})


def test_reference_catalogue_path_is_read_in_place(tmp_path):
    """Paths: a str or a Path; positions, fluxes and an empty frequency (any) as given."""
    path = tmp_path / "r.csv"
    path.write_text("ra,dec,flux_jy,freq_hz\n10.5,-20.25,3.5,\n359.9,89,0.1,1.5e8\n")
    for p in (path, str(path)):
        ref = load_reference_catalogue(p)
        np.testing.assert_array_equal(ref.ra_deg, [10.5, 359.9])
        np.testing.assert_array_equal(ref.flux_jy, [3.5, 0.1])
        assert math.isnan(ref.freq_hz[0]) and ref.freq_hz[1] == 1.5e8
        assert len(ref.at(60e6, 1e6)) == 1 and len(ref.at(150.5e6, 1e6)) == 2


@pytest.mark.parametrize("third", ["independent", "repeated", "nearly repeated"])
def test_clipped_fit_is_weighted_least_squares_with_the_pseudo_inverse_covariance(third):
    """On the points it keeps, clipped_fit's parameters are each column's weighted least
    squares (minimum norm) and its covariance pinv(A^T W A) times the reduced chi^2 when
    above 1, also when the design is rank-deficient (a repeated column) or nearly so."""
    rng = np.random.default_rng(7)
    n = 40
    x = rng.uniform(-1.5, 1.5, n)
    column = {"independent": rng.uniform(-1.5, 1.5, n), "repeated": x,
              "nearly repeated": x + rng.normal(0.0, 1e-9, n)}[third]
    design = np.stack([np.ones(n), x, column], axis=1)
    sigma = rng.uniform(0.5, 2.0, (n, 2)) * 1e-4
    y = design @ np.array([[3e-3, -2e-3], [1e-3, 4e-3], [-2e-3, 5e-4]]) + sigma * rng.normal(
        size=(n, 2))
    params, cov, keep = clipped_fit(design, y, sigma, 3.0)
    assert keep.sum() > n // 2
    for j in range(2):
        sw = np.sqrt(1.0 / np.square(sigma[keep, j]))  # as clipped_fit weights
        a, b = design[keep] * sw[:, None], y[keep, j] * sw
        expected, *_ = np.linalg.lstsq(a, b, rcond=None)
        r = b - a @ expected
        chi2_factor = max(1.0, float(r @ r) / (keep.sum() - 3))
        np.testing.assert_allclose(params[:, j], expected, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(cov[:, :, j], np.linalg.pinv(a.T @ a) * chi2_factor,
                                   rtol=1e-9, atol=1e-20)


def test_excess_scatter_recovers_an_injected_modulation():
    """The Paule-Mandel estimate with clipping: 200 log-ratios with errors of 1-5% and a
    5% scatter of their own, 10 of them variables 40% off, give back the 5%."""
    from trapline.pipeline.calibrate import excess_scatter

    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.01, 0.05, 200)
    y = rng.normal(0.0, np.hypot(sigma, 0.05))
    y[:10] += rng.choice([-0.4, 0.4], 10)
    tau, keep = excess_scatter(y, sigma, p_value=0.01, clip_sigma=3.0)
    assert abs(tau - 0.05) < 0.01
    assert not keep[:10].any() and keep[10:].mean() > 0.97


def test_excess_scatter_is_zero_within_the_errors():
    from trapline.pipeline.calibrate import excess_scatter

    rng = np.random.default_rng(4)
    zero = 0
    for _ in range(50):
        sigma = rng.uniform(0.01, 0.05, 25)
        tau, _ = excess_scatter(rng.normal(0.0, sigma), sigma, p_value=0.01, clip_sigma=3.0)
        zero += tau == 0.0
    assert zero >= 45  # a 1% test: about one in a hundred is called significant
    tau, _ = excess_scatter(rng.normal(0.0, sigma), sigma, p_value=0.0, clip_sigma=3.0)
    assert tau == 0.0


def test_modulation_history_pools_the_accepted_images_of_a_band():
    from trapline.pipeline.calibrate import Calibration, ModulationHistory

    def cal(own):
        return replace(Calibration.identity(0.0, 0.0), own_modulation=own)

    history = ModulationHistory(images=3)
    assert history.pooled(0, cal(math.nan)).flux_modulation == 0.0  # nothing known yet
    assert history.pooled(0, cal(0.05)).flux_modulation == 0.05
    for own in (0.1, 0.1, 0.1, 0.3):  # the last one rejected: never added
        applied = history.pooled(0, cal(own))
        if own < 0.3:
            history.add(0, cal(own))
    # The image's own and the band's last two accepted: rms of (0.3, 0.1, 0.1).
    assert applied.flux_modulation == pytest.approx(math.sqrt((0.09 + 0.02) / 3))
    # An image without its own estimate gets the band's (last three accepted); other
    # bands are apart.
    assert history.pooled(0, cal(math.nan)).flux_modulation == pytest.approx(0.1)
    assert history.pooled(1, cal(math.nan)).flux_modulation == 0.0
    restored = ModulationHistory(images=3)
    restored.load(history.dump())
    assert restored.pooled(0, cal(0.2)) == history.pooled(0, cal(0.2))
