"""The simulator's instrument effects, each checked against its own truth and the pixels:
gain errors, ionospheric distortion, sidelobes, scintillation; and all of them off."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trapline.cli import main
from trapline.image import beam_to_pixels
from trapline.io import read_fits
from trapline.simulate import (
    IMAGE_COLUMNS,
    SIDELOBE_COLUMNS,
    TRUTH_COLUMNS,
    SimulationConfig,
    correlated_noise,
    derived_rng,
    image_effects,
    make_sky,
    paint_sources,
    render_image,
    truth_tables,
)

BRIGHT = {"n_variable": 0, "n_transient": 0, "n_fading": 0, "steady_snr": (300.0, 500.0)}


def unit_beam(image, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The unit-peak restoring beam of an image at pixel offsets (dx, dy)."""
    inv = np.linalg.inv(beam_to_pixels(image.beam, image.wcs).covariance)
    return np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))


def peak_amplitude(image, x: np.ndarray, y: np.ndarray, rms: float):
    """Amplitude (Jy/beam) of beam-shaped sources at (x, y) from the pixel nearest each,
    and its 1-sigma noise error."""
    i, j = np.rint(y).astype(int), np.rint(x).astype(int)
    b = unit_beam(image, j - x, i - y)
    return image.data[i, j] / b, rms / b


def centroid(data: np.ndarray, x: float, y: float, radius: float) -> tuple[float, float]:
    """Flux-weighted centroid of the pixels within ``radius`` of (x, y)."""
    yy, xx = np.mgrid[0 : data.shape[0], 0 : data.shape[1]]
    w = np.where(np.hypot(xx - x, yy - y) <= radius, data.astype(float), 0.0)
    return float(np.sum(w * xx) / w.sum()), float(np.sum(w * yy) / w.sum())


def series_truth(config: SimulationConfig, sky=None):
    """Concatenated (sources, images, sidelobes) truth of every image of a config."""
    sky = sky or make_sky(config)
    parts = [
        truth_tables(config, sky, e, b) for e in range(config.epochs) for b in range(config.bands)
    ]
    return [pd.concat([p[k] for p in parts], ignore_index=True) for k in range(3)]


# ---- gain -----------------------------------------------------------------------------


def test_gain_scales_the_sources_of_each_image_and_not_the_noise():
    config = SimulationConfig(
        size=128, epochs=5, bands=2, n_steady=4, gain_scatter=0.15, seed=11, **BRIGHT
    )
    sky = make_sky(config)
    gains = []
    for epoch in range(config.epochs):
        for band in range(config.bands):
            truth, row, _ = truth_tables(config, sky, epoch, band)
            gain = float(row["gain"].iloc[0])
            assert (truth["gain"] == gain).all()
            np.testing.assert_allclose(truth["apparent_peak_jy"], truth["peak_jy"] * gain)
            # Peak pixel / injected sky flux of each bright source is the image's gain.
            image = render_image(config, sky, epoch, band)
            amp, err = peak_amplitude(
                image, truth["x"].to_numpy(), truth["y"].to_numpy(), config.rms_jy
            )
            ratio, ratio_err = amp / truth["peak_jy"], err / truth["peak_jy"]
            w = 1.0 / ratio_err**2
            measured = np.sum(w * ratio) / np.sum(w)
            assert measured == pytest.approx(gain, abs=4.0 / math.sqrt(np.sum(w)))
            gains.append(gain)
    assert np.std(gains) > 0.05  # the gains really differ from image to image
    # The noise is not scaled: without sources the images are those without gain errors,
    # and with sources the difference is (gain - 1) times the sources alone.
    quiet = {"n_steady": 0}
    for epoch, band in [(0, 0), (3, 1)]:
        on = SimulationConfig(**{**config.__dict__, **quiet})
        off = SimulationConfig(**{**config.__dict__, **quiet, "gain_scatter": 0.0})
        np.testing.assert_array_equal(
            render_image(on, make_sky(on), epoch, band).data,
            render_image(off, make_sky(off), epoch, band).data,
        )
        plain = SimulationConfig(**{**config.__dict__, "gain_scatter": 0.0})
        gain = image_effects(config, epoch, band).gain
        diff = (
            render_image(config, sky, epoch, band).data.astype(float)
            - render_image(plain, sky, epoch, band).data
        )
        alone = render_image(plain, sky, epoch, band, noise=False).data.astype(float)
        np.testing.assert_allclose(diff, (gain - 1.0) * alone, atol=2e-7)


def test_gains_are_lognormal_with_mean_one_and_the_given_scatter():
    config = SimulationConfig(epochs=1000, bands=2, gain_scatter=0.15)
    g = np.array([image_effects(config, e, b).gain for e in range(1000) for b in range(2)])
    n = len(g)
    assert g.mean() == pytest.approx(1.0, abs=4 * 0.15 / math.sqrt(n))
    assert g.std() == pytest.approx(0.15, rel=4 / math.sqrt(2 * n) * 1.3)
    sigma = math.sqrt(math.log1p(0.15**2))
    assert np.log(g).std() == pytest.approx(sigma, rel=4 / math.sqrt(2 * n))
    assert g[0::2].tolist() != g[1::2].tolist()  # the bands of an epoch differ


# ---- ionosphere -----------------------------------------------------------------------


def test_ionosphere_moves_sources_by_offset_and_gradient_scaling_as_freq_minus_2():
    # Bands at 60 and 120 MHz: the shifts in the first are 4 times those in the second.
    config = SimulationConfig(
        size=160,
        epochs=3,
        bands=2,
        n_steady=10,
        freq_hz=90e6,
        band_spacing_hz=60e6,
        iono_offset_arcsec=15.0,
        iono_gradient_arcsec_per_deg=100.0,
        seed=5,
        **BRIGHT,
    )
    sky = make_sky(config)
    sources, images, _ = series_truth(config, sky)
    cx, cy = config.center_pix
    pix_arcsec = config.pixel_deg * 3600
    fitted = {}
    for (epoch, band), truth in sources.groupby(["epoch", "band"]):
        image = render_image(config, sky, epoch, band, noise=False)
        # Where the flux is: the centroid of each source is the recorded apparent position.
        found = np.array(
            [
                centroid(image.data, x, y, 2 * config.fwhm_pix)
                for x, y in zip(truth["x"], truth["y"], strict=True)
            ]
        )
        np.testing.assert_allclose(found[:, 0], truth["x"], atol=0.01)
        np.testing.assert_allclose(found[:, 1], truth["y"], atol=0.01)
        ra, dec = image.pixel_to_sky(found[:, 0], found[:, 1])
        np.testing.assert_allclose(truth["ra"], ra, atol=0.02 * config.pixel_deg)
        np.testing.assert_allclose(truth["dec"], dec, atol=0.02 * config.pixel_deg)
        # The shift from the catalogue position is offset + gradient @ distance from centre.
        d = np.column_stack([truth["sky_x"] - cx, truth["sky_y"] - cy]) * config.pixel_deg
        shift = (found - truth[["sky_x", "sky_y"]].to_numpy()) * pix_arcsec
        design = np.column_stack([np.ones(len(d)), d])
        coef, *_ = np.linalg.lstsq(design, shift, rcond=None)  # rows: 1, dx, dy
        row = images[images["image"] == config.image_name(epoch, band)].iloc[0]
        recorded = np.array(
            [
                [row.iono_dx_arcsec, row.iono_dy_arcsec],
                [row.iono_gxx, row.iono_gyx],
                [row.iono_gxy, row.iono_gyy],
            ]
        )
        assert np.abs(recorded[0]).max() > 3.0  # several arcsec: a real shift
        np.testing.assert_allclose(coef[0], recorded[0], atol=0.2)  # arcsec
        np.testing.assert_allclose(coef[1:], recorded[1:], atol=3.0)  # arcsec per deg
        fitted[epoch, band] = coef
    for epoch in range(config.epochs):
        # freq**-2 between the bands, measured in the pixels and recorded.
        np.testing.assert_allclose(fitted[epoch, 0][0], 4.0 * fitted[epoch, 1][0], atol=0.4)
        by_band = images[images["epoch"] == epoch].sort_values("band")
        cols = ["iono_dx_arcsec", "iono_dy_arcsec", "iono_gxx", "iono_gxy", "iono_gyx", "iono_gyy"]
        np.testing.assert_allclose(by_band[cols].iloc[0], 4.0 * by_band[cols].iloc[1], rtol=1e-12)
    # A new screen every epoch.
    assert not np.allclose(fitted[0, 0][0], fitted[1, 0][0], atol=1.0)
    # The rms values refer to iono_ref_freq_hz: at twice the reference, a quarter of the shift.
    ref = SimulationConfig(**{**config.__dict__, "iono_ref_freq_hz": 2 * config.freq_hz})
    for epoch in range(config.epochs):
        a, b = image_effects(config, epoch, 0), image_effects(ref, epoch, 0)
        np.testing.assert_allclose(b.iono_offset_arcsec, 4.0 * a.iono_offset_arcsec)
        np.testing.assert_allclose(
            b.iono_gradient_arcsec_per_deg, 4.0 * a.iono_gradient_arcsec_per_deg
        )


# ---- sidelobes ------------------------------------------------------------------------


def test_sidelobes_have_the_recorded_positions_and_peaks_and_turn_each_epoch():
    config = SimulationConfig(
        size=256,
        epochs=3,
        n_steady=6,
        n_variable=0,
        n_transient=0,
        n_fading=0,
        steady_snr=(50.0, 500.0),
        min_separation_beams=12.0,
        edge_margin_beams=6.0,
        sidelobe_fraction=0.05,
        sidelobe_threshold_jy=0.2,
        sidelobe_spokes=6,
        sidelobe_radii_beams=(4.0,),
        sidelobe_rotation_deg=20.0,
        seed=3,
    )
    sky = make_sky(config)
    sources, images, lobes = series_truth(config, sky)
    assert list(lobes.columns) == SIDELOBE_COLUMNS
    for (epoch, band), truth in sources.groupby(["epoch", "band"]):
        mine = lobes[(lobes["epoch"] == epoch) & (lobes["band"] == band)]
        bright = truth[truth["apparent_peak_jy"] >= config.sidelobe_threshold_jy]
        assert 0 < len(bright) < len(truth)  # some sources have sidelobes, some not
        assert set(mine["source_id"]) == set(bright["source_id"])
        np.testing.assert_allclose(
            mine["peak_jy"],
            0.05 * truth.set_index("source_id").loc[mine["source_id"], "apparent_peak_jy"],
        )
        # The tables say everything in the pixels: sources plus artefacts, nothing else.
        image = render_image(config, sky, epoch, band, noise=False)
        model = np.zeros_like(image.data)
        pbeam = config.pixel_beam(image.wcs)
        paint_sources(model, truth["x"], truth["y"], truth["apparent_peak_jy"], pbeam)
        paint_sources(model, mine["x"], mine["y"], mine["peak_jy"], pbeam)
        np.testing.assert_allclose(image.data, model, atol=1e-7)
        # In the noisy image, each artefact's peak is where and as bright as recorded.
        noisy = render_image(config, sky, epoch, band)
        amp, err = peak_amplitude(noisy, mine["x"].to_numpy(), mine["y"].to_numpy(), config.rms_jy)
        assert (mine["peak_jy"] > 10 * config.rms_jy).all()
        assert (np.abs(amp - mine["peak_jy"]) < 4.5 * err).all()
        found = np.array(
            [
                centroid(image.data, x, y, 2 * config.fwhm_pix)
                for x, y in zip(mine["x"], mine["y"], strict=True)
            ]
        )
        np.testing.assert_allclose(found, mine[["x", "y"]], atol=0.01)
        # Each artefact lies at 4 beams from its source's apparent position.
        parent = truth.set_index("source_id").loc[mine["source_id"]]
        dist = np.hypot(found[:, 0] - parent["x"], found[:, 1] - parent["y"])
        np.testing.assert_allclose(dist, 4.0 * config.fwhm_pix, atol=0.02)
        lobes.loc[mine.index, "measured_deg"] = np.degrees(
            np.arctan2(found[:, 1] - parent["y"].to_numpy(), found[:, 0] - parent["x"].to_numpy())
        )
    assert images["sidelobe_angle_deg"].tolist() == [0.0, 20.0, 40.0]
    # The pattern turns by 20 deg from one epoch to the next, as measured in the pixels.
    turn = lobes.pivot_table(index=["source_id", "spoke"], columns="epoch", values="measured_deg")
    steps = (np.diff(turn.dropna().to_numpy(), axis=1) + 180.0) % 360.0 - 180.0
    assert steps.size >= 10
    np.testing.assert_allclose(steps, 20.0, atol=0.1)


# ---- scintillation --------------------------------------------------------------------


def test_scintillation_modulation_index_over_many_images():
    m = 0.2
    config = SimulationConfig(
        size=96, epochs=120, n_steady=3, scintillation_index=m, seed=2, **BRIGHT
    )
    sky = make_sky(config)
    factors, measured = [], []
    for epoch in range(config.epochs):
        truth = truth_tables(config, sky, epoch, 0)[0]
        np.testing.assert_allclose(
            truth["apparent_peak_jy"], truth["peak_jy"] * truth["scintillation"]
        )
        image = render_image(config, sky, epoch, 0)
        amp, err = peak_amplitude(
            image, truth["x"].to_numpy(), truth["y"].to_numpy(), config.rms_jy
        )
        # Each image's apparent flux is in the pixels.
        assert (np.abs(amp - truth["apparent_peak_jy"]) < 4.5 * err).all()
        measured.append(amp / truth["peak_jy"])
        factors.append(truth["scintillation"])
    measured, factors = np.array(measured), np.array(factors)  # (epochs, sources)
    z = measured.ravel()
    n = z.size
    # std/mean of the measured flux ratio: the modulation index, within its sampling error
    # (the noise adds (rms / peak)**2 ~ 1e-5 to the variance, negligible).
    index = z.std() / z.mean()
    kurt = np.mean((z - z.mean()) ** 4) / z.var() ** 2
    assert index == pytest.approx(m, abs=4 * m * math.sqrt((kurt - 1) / (4 * n)))
    # Independent from image to image and from source to source.
    f = factors - factors.mean()
    lag = np.sum(f[1:] * f[:-1]) / np.sum(f * f)
    assert abs(lag) < 4 / math.sqrt(n)
    assert abs(np.corrcoef(f[:, 0], f[:, 1])[0, 1]) < 4 / math.sqrt(config.epochs)


# ---- all effects off, and on through the command --------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {
            "size": 128,
            "epochs": 2,
            "bands": 2,
            "n_steady": 5,
            "jitter_arcsec": 3.0,
            "spectral_index_scatter": 0.3,
        },
        {
            "allsky": True,
            "drift": True,
            "size": 128,
            "epochs": 2,
            "cadence_s": 3600.0,
            "n_steady": 8,
            "n_variable": 2,
            "n_transient": 1,
            "n_fading": 1,
        },
    ],
)
def test_effects_off_render_the_sky_alone(kw):
    config = SimulationConfig(seed=4, **kw)
    sky = make_sky(config)
    for epoch in range(config.epochs):
        for band in range(config.bands):
            # The image built without the effects code: noise plus the sky's sources.
            wcs = config.wcs(epoch)
            pbeam = config.pixel_beam(wcs)
            expected = correlated_noise(
                (config.size,) * 2, pbeam, config.rms_jy, derived_rng(config.seed, 1, epoch, band)
            )
            x, y = config.pixels_at(epoch, *sky.positions(epoch))
            paint_sources(expected, x, y, sky.peak_jy(epoch, config.freqs_hz[band]), pbeam)
            data = render_image(config, sky, epoch, band).data
            finite = np.isfinite(data)
            np.testing.assert_array_equal(data[finite], expected[finite])
            truth, row, lobes = truth_tables(config, sky, epoch, band)
            assert list(truth.columns) == TRUTH_COLUMNS and list(row.columns) == IMAGE_COLUMNS
            assert (truth["apparent_peak_jy"] == truth["peak_jy"]).all()
            assert (truth["gain"] == 1.0).all() and (truth["scintillation"] == 1.0).all()
            iono = row[["iono_dx_arcsec", "iono_dy_arcsec", "iono_gxx", "iono_gyy"]]
            assert (iono.to_numpy() == 0).all() and len(lobes) == 0
            np.testing.assert_array_equal(truth["x"], x)
            np.testing.assert_allclose(
                truth[["sky_ra", "sky_dec"]], np.column_stack([sky.ra, sky.dec])
            )


def test_command_allsky_drift_with_all_effects(tmp_path: Path, capsys):
    out = tmp_path / "sim"
    argv = ["simulate", str(out)] + (
        "--allsky --drift --size 160 --epochs 3 --bands 2 --cadence-s 300 --n-steady 12 "
        "--n-variable 0 --n-transient 0 --n-fading 0 --seed 9 --gain-scatter 0.1 "
        "--iono-offset-arcsec 3600 --iono-gradient-arcsec-per-deg 30 --iono-ref-mhz 150 "
        "--sidelobe-fraction 0.1 --sidelobe-threshold-jy 0.15 --sidelobe-spokes 8 "
        "--sidelobe-radii-beams 3 5.5 --sidelobe-rotation-deg 15 --scintillation-index 0.1"
    ).split()
    assert main(argv) == 0
    assert "images.csv, sidelobes.csv" in capsys.readouterr().out
    truth = pd.read_csv(out / "truth.csv")
    images = pd.read_csv(out / "images.csv")
    lobes = pd.read_csv(out / "sidelobes.csv")
    assert list(truth.columns) == TRUTH_COLUMNS and list(images.columns) == IMAGE_COLUMNS
    assert list(lobes.columns) == SIDELOBE_COLUMNS
    assert len(images) == 6 and (images["gain"] != 1).all()
    assert set(images["image"]) == {p.name for p in out.glob("*.fits")}
    f = images.sort_values(["epoch", "band"])["freq_hz"].to_numpy()
    dx = images.sort_values(["epoch", "band"])["iono_dx_arcsec"].to_numpy()
    np.testing.assert_allclose(dx[0::2] / dx[1::2], (f[0::2] / f[1::2]) ** -2)
    assert set(lobes["radius_beams"]) == {3.0, 5.5} and lobes["spoke"].max() == 7
    np.testing.assert_allclose(images["sidelobe_angle_deg"], images["epoch"] * 15.0)
    start = lobes.merge(images[["image", "sidelobe_angle_deg"]], on="image")
    np.testing.assert_allclose(
        start["angle_deg"], (start["sidelobe_angle_deg"] + 45.0 * start["spoke"]) % 360
    )
    config = SimulationConfig(allsky=True, size=160)
    checked = 0
    for name in images["image"]:
        image = read_fits(out / name)
        mine = lobes[lobes["image"] == name]
        # Every artefact is on the visible sky (its nearest pixel is not blank).
        assert np.isfinite(
            image.data[np.rint(mine["y"]).astype(int), np.rint(mine["x"]).astype(int)]
        ).all()
        rms = 1e-3
        seen = truth[(truth["image"] == name) & (truth["peak_jy"] > 0)]
        # The rendered positions are the recorded apparent ones on this epoch's sky.
        ra, dec = image.pixel_to_sky(seen["x"].to_numpy(), seen["y"].to_numpy())
        np.testing.assert_allclose(ra, seen["ra"], atol=1e-6)
        np.testing.assert_allclose(dec, seen["dec"], atol=1e-6)
        bright = seen[seen["apparent_peak_jy"] > 50 * rms]
        amp, err = peak_amplitude(image, bright["x"].to_numpy(), bright["y"].to_numpy(), rms)
        assert (np.abs(amp - bright["apparent_peak_jy"]) < 5 * err).all()
        # Artefacts clear of other sources and artefacts (those may overlap, as in real
        # images) have the recorded peak.
        mine = lobes[(lobes["image"] == name) & (lobes["peak_jy"] > 20 * rms)]
        others = pd.concat([seen[["x", "y"]], lobes[lobes["image"] == name][["x", "y"]]])
        d = np.hypot(
            mine["x"].to_numpy()[:, None] - others["x"].to_numpy(),
            mine["y"].to_numpy()[:, None] - others["y"].to_numpy(),
        )
        d[d == 0] = np.inf
        mine = mine[d.min(axis=1) > 2 * config.fwhm_pix]
        checked += len(mine)
        amp, err = peak_amplitude(image, mine["x"].to_numpy(), mine["y"].to_numpy(), rms)
        assert (np.abs(amp - mine["peak_jy"]) < 5 * err).all()
    assert checked >= 8
    # Same seed, same bytes.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_command_documents_and_checks_the_effect_options(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--gain-scatter",
        "--iono-offset-arcsec",
        "--iono-gradient-arcsec-per-deg",
        "--iono-ref-mhz",
        "--sidelobe-fraction",
        "--sidelobe-threshold-jy",
        "--sidelobe-spokes",
        "--sidelobe-radii-beams",
        "--sidelobe-rotation-deg",
        "--scintillation-index",
    ):
        assert flag in text
    assert main(["simulate", str(tmp_path), "--gain-scatter", "-0.1"]) == 2
    assert "gain_scatter" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path), "--sidelobe-spokes", "0"]) == 2
    assert "sidelobe_spokes" in capsys.readouterr().err
