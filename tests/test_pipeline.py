"""The pipeline end to end on simulated series with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

import trapline.api
from trapline.geometry import unit_vectors
from trapline.pipeline.config import PipelineConfig
from trapline.run import run_files
from trapline.simulate import SimulationConfig, write_series


def simulate(tmp_path, seed: int, bands: int, epochs: int = 10, **kw) -> tuple[str, pd.DataFrame,
                                                                                pd.DataFrame]:
    options = dict(size=384, n_steady=40, n_variable=8, n_transient=4, n_fading=3,
                   variable_snr=(30, 200), modulation_index=0.4)
    config = SimulationConfig(seed=seed, epochs=epochs, bands=bands, **{**options, **kw})
    files = write_series(config, tmp_path / f"sim{seed}")
    return str(files.out_dir), pd.read_csv(files.truth), pd.read_csv(files.sources)


def match_sources(found: pd.DataFrame, truth_sources: pd.DataFrame, radius_arcsec: float):
    """Pipeline sources within ``radius_arcsec`` of each true source."""
    tree = cKDTree(unit_vectors(found.ra.to_numpy(), found.dec.to_numpy()))
    chord = 2 * np.sin(np.radians(radius_arcsec / 3600) / 2)
    hits = tree.query_ball_point(unit_vectors(truth_sources.ra.to_numpy(),
                                              truth_sources.dec.to_numpy()), chord)
    return [found.source_id.to_numpy()[h] for h in hits]


# An AARTFAAC-like series: all-sky images centred on the zenith, whose RA follows the
# sky (every image has its own WCS; the sources move ~12 pixels across the series).
DRIFTING_ALLSKY = dict(size=256, allsky=True, drift=True, cadence_s=120.0)


@pytest.fixture(scope="module", params=[(1, 1, False), (2, 3, False), (3, 1, True)],
                ids=["1band", "3bands", "allsky-drifting"])
def series_run(request, tmp_path_factory):
    seed, bands, drifting = request.param
    tmp = tmp_path_factory.mktemp(f"run{seed}")
    folder, truth, sources = simulate(tmp, seed, bands, **(DRIFTING_ALLSKY if drifting else {}))
    db = f"sqlite:///{tmp / 'run.sqlite'}"
    config = PipelineConfig()
    config.run.workers = 2
    summary = run_files([folder], db, config)
    # Matches within a fraction of the beam: 20 arcsec, or 0.3 degree on the sky-wide
    # pixels of the all-sky images.
    radius = 1080.0 if drifting else 20.0
    return trapline.api.open(db), truth, sources, summary, bands, radius


def test_every_source_one_lightcurve(series_run):
    run, truth, sources, summary, _, radius = series_run
    assert summary.accepted == len(truth.image.unique())
    found = run.sources()
    peak = truth.groupby("source_id").apply(lambda g: (g.peak_jy / g.rms_jy).max())
    bright = sources[sources.source_id.map(peak) >= 8]
    matches = match_sources(found, bright, radius)
    counts = np.array([len(m) for m in matches])
    assert (counts == 1).all(), bright[counts != 1]
    # ... and no pipeline source merges two true sources.
    all_ids = np.concatenate(matches)
    assert len(all_ids) == len(np.unique(all_ids))


def test_transients_flagged_new_at_first_appearance(series_run):
    run, truth, sources, _, _, radius = series_run
    candidates = run.candidates()
    new = candidates[candidates.kind == "new"]
    images = run.images().set_index("image_id")
    found = run.sources()
    transients = sources[sources.population == "transient"]
    matches = match_sources(found, transients, radius)
    for (_, t), ids in zip(transients.iterrows(), matches, strict=True):
        on = truth[(truth.source_id == t.source_id) & (truth.peak_jy > 0)]
        if (on.peak_jy / on.rms_jy).max() < 10 or t.start_epoch == 0:
            continue
        assert len(ids) == 1
        flagged = new[new.source_id == ids[0]]
        assert len(flagged) == 1, f"transient {t.source_id} not flagged new"
        first_time = pd.Timestamp(images.loc[flagged.image_id.iloc[0], "time"])
        expected = pd.Timestamp(on.sort_values("time_mjd").time.iloc[0])
        assert abs((first_time - expected).total_seconds()) < 0.5


def test_steady_sources_not_flagged_new(series_run):
    run, truth, sources, _, _, radius = series_run
    candidates = run.candidates()
    new_ids = set(candidates[candidates.kind == "new"].source_id)
    steady = sources[(sources.population == "steady")]
    snr = truth.groupby("source_id").apply(lambda g: (g.peak_jy / g.rms_jy).min())
    steady = steady[steady.source_id.map(snr) >= 10]
    for ids in match_sources(run.sources(), steady, radius):
        assert not set(ids) & new_ids


def test_variables_rank_above_steady_in_eta(series_run):
    run, _, sources, _, _, radius = series_run
    var = run.variability()
    eta = var.groupby("source_id").eta_int.max()
    found = run.sources()

    def etas(population):
        sel = sources[sources.population == population]
        return np.array([eta.get(ids[0], np.nan) for ids in match_sources(found, sel, radius)
                         if len(ids) == 1])

    variable, steady = etas("variable"), etas("steady")
    pairs = (variable[:, None] > steady[None, :]).mean()
    assert pairs > 0.9, pairs


def test_null_detections_fill_lightcurves(series_run):
    """Transients that switched off and fading sources below threshold keep getting
    points: forced fits at their position, one per image and band, from their first
    detection on (before it, precovery points of its band)."""
    run, truth, sources, _, bands, radius = series_run
    found = run.sources()
    n_images = len(run.images())
    faders = sources[sources.population.isin(["transient", "fading"])]
    checked = 0
    for ids in match_sources(found, faders, radius):
        if len(ids) != 1:
            continue
        lc = run.lightcurve(int(ids[0]))
        first = lc[lc.kind == "blind"].time.min()
        after = lc[lc.time >= first]
        expected = (run.images().time >= first).sum()
        assert len(after) == expected <= n_images
        assert (after.kind == "forced").any() or (after.kind == "blind").all()
        before = lc[lc.time < first]
        assert (before.kind == "precovery").all()
        checked += 1
    assert checked >= 3
